"""The Redis engine runs the shared engine contract on real containers of
``holdfast-test/redis:7``, once without a password and once with one set the
way official-image users do (``redis-server --requirepass X``), plus checks
that the password never reaches an exec command line."""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from backup.engines import get_engine
from backup.engines.redis import RedisEngine
from backup.types import DatabaseContainer
from service.adapters.docker import DockerAdapter
from tests.contract.engine_contract import EngineContract, RecordingExec, top_processes
from tests.harness.docker_fixtures import TEST_LABEL, require_image

pytestmark = pytest.mark.docker

REDIS_IMAGE = "holdfast-test/redis:7"
PASSWORD = "r3dis-Test-pw-9f2"
READY_TIMEOUT_S = 60.0

# A digest of every key in one database that does not depend on DUMP's
# encoding: key, type, whether it has a TTL, and the value in a canonical
# form (collections sorted where their order is not part of the data).
FINGERPRINT_LUA = r"""
local function enc(items)
  local out = {}
  for _, item in ipairs(items) do out[#out + 1] = #item .. ':' .. item end
  return table.concat(out, ',')
end
local keys = redis.call('KEYS', '*')
table.sort(keys)
local parts = {}
local with_ttl = 0
for _, key in ipairs(keys) do
  local kind = redis.call('TYPE', key)['ok']
  local value
  if kind == 'string' then
    value = redis.call('GET', key)
  elseif kind == 'list' then
    value = enc(redis.call('LRANGE', key, 0, -1))
  elseif kind == 'set' then
    local members = redis.call('SMEMBERS', key)
    table.sort(members)
    value = enc(members)
  elseif kind == 'zset' then
    value = enc(redis.call('ZRANGE', key, 0, -1, 'WITHSCORES'))
  elseif kind == 'hash' then
    local flat = redis.call('HGETALL', key)
    local pairs_ = {}
    for i = 1, #flat, 2 do
      pairs_[#pairs_ + 1] = #flat[i] .. ':' .. flat[i] .. '=' .. flat[i + 1]
    end
    table.sort(pairs_)
    value = enc(pairs_)
  else
    value = '?'
  end
  local ttl = redis.call('PTTL', key)
  local ttl_flag = '-'
  if ttl > 0 then ttl_flag = 'T'; with_ttl = with_ttl + 1 end
  parts[#parts + 1] = #key .. ':' .. key .. '|' .. kind .. '|' .. ttl_flag .. '|' .. value
end
return {#keys, with_ttl, redis.sha1hex(table.concat(parts, '\n'))}
"""


def _resp(*args: bytes | str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def seed_commands() -> list[bytes]:
    """About 5,000 keys of every type in db 0, a TTL key, binary keys and
    values, and a few keys in db 3."""
    rng = random.Random(1234)
    cmds = [_resp("SELECT", "0")]
    for i in range(2000):
        cmds.append(_resp("SET", f"str:{i}", f"value {i} " * (i % 7 + 1)))
    for i in range(600):
        cmds.append(_resp("HSET", f"hash:{i}", *[x for f in range(6)
                                                 for x in (f"field{f}", f"v{i * f}")]))
    for i in range(600):
        cmds.append(_resp("RPUSH", f"list:{i}", *[f"item{i}-{n}" for n in range(10)]))
    for i in range(600):
        cmds.append(_resp("SADD", f"set:{i}", *[f"member{(i * n) % 97}" for n in range(8)]))
    for i in range(600):
        cmds.append(_resp("ZADD", f"zset:{i}", *[x for n in range(8)
                                                 for x in (str(n * 1.5 - i), f"m{n}")]))
    for i in range(600):
        value = bytes(rng.randrange(256) for _ in range(48)) + b"\x00\r\n\xff"
        cmds.append(_resp("SET", b"bin:\x00\xff:" + str(i).encode(), value))
    cmds.append(_resp("SET", "session:ttl", "expires later", "EX", "86400"))
    cmds.append(_resp("HSET", "hash:ttl", "a", "1"))
    cmds.append(_resp("PEXPIRE", "hash:ttl", "90000000"))
    cmds.append(_resp("SELECT", "3"))
    for i in range(50):
        cmds.append(_resp("SET", f"other-db:{i}", str(i)))
    return cmds


def _cli_env(password: str | None) -> dict[str, str]:
    return {"REDISCLI_AUTH": password} if password else {}


def redis_cli(container: Container, password: str | None, *args: str) -> str:
    result = container.exec_run(["redis-cli", *args], environment=_cli_env(password),
                                demux=True)
    out, err = result.output if result.output is not None else (None, None)
    if result.exit_code != 0:
        raise AssertionError(f"redis-cli {args} exited {result.exit_code}: {err!r}")
    return (out or b"").decode("utf-8", "replace")


@pytest.fixture
def adapter() -> Any:
    adapter = DockerAdapter()
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def redis_image(docker_client: docker.DockerClient) -> str:
    return require_image(docker_client, REDIS_IMAGE)


@pytest.fixture(params=[None, PASSWORD], ids=["no-password", "requirepass"])
def redis_password(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def redis_factory(docker_client: docker.DockerClient, test_network: str, redis_image: str,
                  redis_password: str | None) -> Iterator[Any]:
    """Yields ``make()``: a running redis container on a fresh volume at /data,
    started with ``--requirepass`` when the run has a password, ready for PING."""
    containers: list[Container] = []
    volumes: list[str] = []

    def make() -> Container:
        name = f"hf-test-redis-{secrets.token_hex(4)}"
        volume = f"{name}-data"
        docker_client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
        volumes.append(volume)
        command = ["redis-server", "--requirepass", redis_password] if redis_password else None
        container = docker_client.containers.run(
            redis_image, command=command, name=name, detach=True,
            labels={TEST_LABEL: "1", "holdfast.enable": "true", "holdfast.engine": "redis"},
            network=test_network, volumes={volume: {"bind": "/data", "mode": "rw"}},
        )
        containers.append(container)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"redis container {name} exited: {container.logs(tail=20)!r}")
            if container.status == "running":
                try:
                    if redis_cli(container, redis_password, "PING").strip() == "PONG":
                        return container
                except AssertionError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"redis in {name} not ready: {container.logs(tail=20)!r}")
            time.sleep(0.2)

    yield make

    for container in reversed(containers):
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)
    for volume in volumes:
        with contextlib.suppress(NotFound, APIError):
            docker_client.volumes.get(volume).remove(force=True)


@pytest.fixture
def seeded_source(redis_factory: Any, adapter: DockerAdapter,
                  redis_password: str | None) -> DatabaseContainer:
    container = redis_factory()
    payload = b"".join(seed_commands())
    result = adapter.run(container.id, ["redis-cli", "--pipe"], env=_cli_env(redis_password),
                         stdin=[payload])
    assert b"errors: 0" in result.stdout, result.stdout
    assert int(redis_cli(container, redis_password, "DBSIZE")) == 5002
    return adapter.inspect(container.id)


class TestRedisEngine(EngineContract):
    @pytest.fixture
    def engine(self) -> RedisEngine:
        return RedisEngine()

    @pytest.fixture
    def source(self, seeded_source: DatabaseContainer) -> DatabaseContainer:
        return seeded_source

    @pytest.fixture
    def fresh_target(self, redis_factory: Any, adapter: DockerAdapter) -> DatabaseContainer:
        return adapter.inspect(redis_factory().id)

    @pytest.fixture
    def known_figures(self) -> dict[str, int]:
        return {"db0": 5000, "db3": 50}  # db0 also holds 2 keys with a TTL

    @pytest.fixture
    def remove_one(self, docker_client: docker.DockerClient, redis_password: str | None) -> Any:
        def remove(container: DatabaseContainer) -> set[str]:
            real = docker_client.containers.get(container.id)
            assert redis_cli(real, redis_password, "-n", "3", "DEL", "other-db:7").strip() == "1"
            return {"db3"}
        return remove

    @pytest.fixture
    def fingerprint(self, docker_client: docker.DockerClient,
                    redis_password: str | None) -> Any:
        def take(container: DatabaseContainer) -> dict[int, str]:
            real = docker_client.containers.get(container.id)
            digests = {}
            for db in (0, 3):
                digests[db] = redis_cli(real, redis_password, "-n", str(db),
                                        "EVAL", FINGERPRINT_LUA, "0")
            return digests
        return take

    def test_fingerprint_sees_every_key(self, source: DatabaseContainer, fingerprint: Any) -> None:
        digests = fingerprint(source)
        assert digests[0].split()[:2] == ["5002", "2"]
        assert digests[3].split()[:2] == ["50", "0"]



@pytest.mark.parametrize("redis_password", [PASSWORD], ids=["requirepass"])
def test_password_never_reaches_an_exec_argv(
    seeded_source: DatabaseContainer, redis_factory: Any, adapter: DockerAdapter,
    docker_client: docker.DockerClient, redis_password: str,
) -> None:
    engine = RedisEngine()
    recorder = RecordingExec(adapter)
    assert engine.password(seeded_source) == redis_password
    dump = engine.dump(seeded_source, recorder)
    chunks = iter(dump.chunks)
    data = [next(chunks)]
    # While redis-cli --rdb runs, no process in the container but the server
    # itself (whose command the user chose) shows the password.
    for _, top_line in top_processes(docker_client, seeded_source.id):
        if "redis-server" not in top_line:
            assert redis_password not in top_line
    data.extend(chunks)
    target = adapter.inspect(redis_factory().id)
    assert engine.is_ready(target, recorder)
    assert engine.restore(target, recorder, data) == ["db0", "db3"]
    assert recorder.argvs, "nothing was recorded"
    for argv in recorder.argvs:
        assert not any(redis_password in arg for arg in argv), argv



def test_password_comes_from_command_then_environment() -> None:
    def make(command: tuple[str, ...] = (), env: Mapping[str, str] | None = None) -> Any:
        return DatabaseContainer(id="x", name="cache", image="redis:7", image_id="",
                                 env=dict(env or {}), command=command)

    engine = RedisEngine()
    assert engine.password(make(("redis-server",))) is None
    assert engine.password(make(("redis-server", "--requirepass", "a"))) == "a"
    assert engine.password(make(("--requirepass", "a", "--requirepass", "b"))) == "b"
    assert engine.password(make(env={"REDIS_PASSWORD": "e"})) == "e"
    assert engine.password(make(("redis-server", "--requirepass", "c"),
                                {"REDIS_PASSWORD": "e"})) == "c"
    engine.check(make())
    assert isinstance(get_engine("redis"), RedisEngine)


@pytest.mark.parametrize("redis_password", [None], ids=["no-password"])
def test_corrupt_rdb_is_refused_and_cleaned_up(
    seeded_source: DatabaseContainer, redis_factory: Any, adapter: DockerAdapter,
    docker_client: docker.DockerClient,
) -> None:
    from backup.errors import CorruptSnapshot
    from backup.framing import pack

    engine = RedisEngine()
    data = b"".join(engine.dump(seeded_source, adapter).chunks)
    assert data
    target = adapter.inspect(redis_factory().id)
    bogus = pack([("meta.json", [b'{"databases": ["db0"], "keys": {"db0": 1}}']),
                  ("dump.rdb", [b"REDIS0010" + b"\x00garbage" * 100])])
    with pytest.raises(CorruptSnapshot):
        engine.restore(target, adapter, decompress_plain(bogus))
    real = docker_client.containers.get(target.id)
    assert redis_cli(real, None, "DBSIZE").strip() == "0"
    leftovers = real.exec_run(["sh", "-c", "ls -d /tmp/holdfast-restore-* 2>/dev/null"])
    assert leftovers.output.strip() == b""
    assert [line for _, line in top_processes(docker_client, target.id)
            if "redis-server" in line and "6379" not in line] == []


def decompress_plain(chunks: Iterator[bytes]) -> list[bytes]:
    return [b"".join(chunks)]

