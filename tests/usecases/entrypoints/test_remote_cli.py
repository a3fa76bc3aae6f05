"""``holdfast --server URL``: every command run both ways on one fake world, compared.

Local mode swaps the CLI's bootstrap for the fakes (as tests/usecases/entrypoints/
test_cli.py does); remote mode swaps :func:`service.entrypoints.cli.app.make_remote`
for a :class:`~service.adapters.api_client.client.RemoteBackend` whose httpx client
is a TestClient on the API app over the same services. The same command must
print the same stdout (tables and ``--json``) and exit with the same code.
"""

from __future__ import annotations

import importlib
import json
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

import service.entrypoints.cli  # noqa: F401  (registers every command on the app)
from backup.errors import InvalidInput
from backup.types import SnapshotStatus
from service.adapters.api_client.client import RemoteBackend
from service.entrypoints.api.app import create_app
from service.entrypoints.cli.app import app
from service.entrypoints.cli.remote import RemoteTarget, checked_server, error_classes
from service.usecases import tokens
from service.usecases.jobs import JobRunner
from tests.fakes.docker import DUMP
from tests.fakes.services import FakeWorld
from tests.harness.api import TEST_TOKEN
from tests.usecases.entrypoints.helpers import add_db, wait_until

pytestmark = pytest.mark.filterwarnings(
    "ignore:You should not use the 'timeout' argument with the TestClient")
"""The client bounds every call's time; the in-process TestClient has no use for it."""

CLI_MODULE = importlib.import_module("service.entrypoints.cli.app")
COMMANDS = importlib.import_module("service.entrypoints.cli.commands")
SERVER = "http://holdfast.test:8420"

Run = Callable[..., Result]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger onto the runner's stderr; put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def api(world: FakeWorld, jobs: JobRunner) -> Any:
    return create_app(world.services, jobs)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch, api: Any) -> list[RemoteTarget]:
    """The remote targets the CLI built; each gets a backend on the in-process app."""
    targets: list[RemoteTarget] = []

    def make(target: RemoteTarget) -> RemoteBackend:
        targets.append(target)
        headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        client = TestClient(api, base_url=target.server, headers=headers)
        return RemoteBackend(client, target.server, *error_classes())

    monkeypatch.setattr(CLI_MODULE, "make_remote", make)
    return targets


@pytest.fixture
def local(world: FakeWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
    return invoke


@pytest.fixture
def remote(made: list[RemoteTarget], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Run:
    """The CLI with HOLDFAST_SERVER/HOLDFAST_TOKEN, a data dir of its own and no
    bootstrap at all: nothing local may be used."""
    def no_local(settings: Any) -> Any:
        raise AssertionError("remote mode opened local services")

    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()

    def invoke(*args: str, token: str = TEST_TOKEN) -> Result:
        local_bootstrap = CLI_MODULE.bootstrap
        CLI_MODULE.bootstrap = no_local  # type: ignore[attr-defined]
        try:
            return runner.invoke(app, list(args), env={
                "HOLDFAST_DATA_DIR": str(tmp_path / "elsewhere"), "HOLDFAST_SERVER": SERVER,
                "HOLDFAST_TOKEN": token})
        finally:
            CLI_MODULE.bootstrap = local_bootstrap  # type: ignore[attr-defined]
    return invoke


def one_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("holdfast: ")
    return line


def cli_line(result: Result, code: int) -> str:
    """As :func:`one_line`, where the in-process daemon's job may log on the same
    stderr (its failure, its cancel): the CLI's line is the only one of its
    kind, and the last."""
    assert result.exit_code == code, result.output
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("holdfast: ")]
    assert result.stderr.splitlines()[-1] == line
    return line


def seeded(world: FakeWorld, local: Run) -> dict[str, Any]:
    """Two instances, tagged and pinned snapshots, a copy with a TTL, a token and a volume."""
    add_db(world, "shop-db", labels={"holdfast.schedule": "@daily",
                                     "holdfast.retention": "last=1"})
    add_db(world, "crm-db")
    first: dict[str, Any] = json.loads(
        local("backup", "shop-db", "--tag", "release=v1", "--json").stdout)
    json.loads(local("backup", "shop-db", "--pin", "--json").stdout)
    json.loads(local("backup", "crm-db", "--json").stdout)
    copy = local("restore", first["id"], "--name", "shop-copy", "--ttl", "4h", "--json")
    assert copy.exit_code == 0, copy.output
    assert local("tokens", "create", "--name", "ci", "--scope", "read").exit_code == 0
    assert local("volumes", "create", "scratch", "--label", "team=db").exit_code == 0
    return first


# --- the same output both ways -------------------------------------------------------

READS = [
    ["instances"], ["instances", "--json"],
    ["snapshots"], ["snapshots", "--json"], ["snapshots", "shop-db"],
    ["snapshots", "--tag", "release=v1", "--json"],
    ["copies", "ls"],
    ["tokens", "ls"], ["tokens", "ls", "--json"],
    ["volumes", "ls"], ["volumes", "ls", "--json"], ["volumes", "ls", "--no-size"],
    ["prune", "--dry-run"], ["prune", "--dry-run", "--json"],
    ["prune", "shop-db", "--dry-run", "--json"],
    # Failures: the same one line and exit code.
    ["snapshots", "--tag", "no-equals-sign"],          # 2, parsed by the CLI
    ["restore", "nosuch1", "--name", "x"],              # 3, snapshot not found
    ["backup", "nosuch"],                               # 3, instance not found
    ["forget", "shop-db"],                              # 4, still labelled
    ["volumes", "create", "scratch"],                   # 4, the name is taken
    ["volumes", "rm", "nosuch-vol"],                    # 3
    ["copies", "extend", "nosuch", "1h"],               # 3
    ["tokens", "revoke", "nosuch"],                     # 3
    ["tokens", "create", "--name", "ci", "--scope", "read"],  # 4, taken
    ["prune", "nosuch"],                                # 3
    ["restore", "--undo-replace", "nosuch"],            # nothing set aside
    ["pin", "nosuch1"],                                 # 3
    ["targets", "check", "local", "--json"],
    ["notify", "ls"], ["notify", "ls", "--json", "--status", "failed"],
    ["notify", "channels"], ["notify", "channels", "--json"],
    ["notify", "test", "nosuch"],                       # 3, no such channel
    ["notify", "ls", "--status", "sent"],               # 2, parsed by the CLI
]


@pytest.mark.parametrize("args", READS, ids=" ".join)
def test_a_command_prints_the_same_and_exits_the_same_through_the_server(
        world: FakeWorld, local: Run, remote: Run, args: list[str]) -> None:
    seeded(world, local)
    here, there = local(*args), remote(*args)
    if args[:2] == ["targets", "check"]:  # the probe's seconds are its own each time
        def untimed(result: Result) -> Any:
            return [{**entry, "seconds": None} for entry in json.loads(result.stdout)]
        assert (there.exit_code, untimed(there)) == (here.exit_code, untimed(here))
        return
    assert (there.exit_code, there.stdout, there.stderr) == (here.exit_code, here.stdout,
                                                             here.stderr)


def test_the_listing_of_copies_as_json_is_the_same_but_for_the_seconds_left_moving_on(
        world: FakeWorld, local: Run, remote: Run) -> None:
    seeded(world, local)
    here = json.loads(local("copies", "ls", "--json").stdout)
    there = json.loads(remote("copies", "ls", "--json").stdout)
    assert [{**c, "seconds_left": None} for c in there] == \
        [{**c, "seconds_left": None} for c in here]
    assert [c["seconds_left"] for c in here] >= [c["seconds_left"] for c in there]
    assert len(there) == 1 and there[0]["name"] == "shop-copy"


def test_writes_through_the_server_change_the_daemon_s_world_and_print_as_locally(
        world: FakeWorld, local: Run, remote: Run) -> None:
    first = seeded(world, local)
    # Pinning twice changes nothing the second time: the two lines are the same.
    assert remote("pin", first["id"]).stdout == local("pin", first["id"]).stdout
    assert world.catalog.get_snapshot(first["id"]).pinned  # type: ignore[union-attr]
    assert remote("unpin", first["id"], "--json").stdout == \
        local("unpin", first["id"], "--json").stdout

    done = remote("backup", "crm-db", "--tag", "k=v", "--json")
    snapshot = json.loads(done.stdout)
    assert done.exit_code == 0 and snapshot["tags"] == {"k": "v"}
    assert snapshot == world.catalog.get_snapshot(snapshot["id"]).to_json()  # type: ignore
    line = remote("backup", "crm-db").stdout
    assert re.fullmatch(r"snapshot \S+ complete: .+ in target local\n", line), line

    restored = json.loads(remote("restore", snapshot["id"], "--name", "crm-copy", "--ttl", "1h",
                                 "--json").stdout)
    assert restored["container"] == "crm-copy" and restored["snapshot_id"] == snapshot["id"]
    assert "crm-copy" in world.docker.container_names()
    assert [c["name"] for c in json.loads(local("copies", "ls", "--json").stdout)] == \
        ["crm-copy", "shop-copy"]
    extended = remote("copies", "extend", "crm-copy", "2h")
    assert extended.exit_code == 0 and extended.stdout.startswith("copy crm-copy now expires at")

    deleted = remote("delete", snapshot["id"], "--json")
    assert deleted.exit_code == 0, deleted.output
    assert json.loads(deleted.stdout)["id"] == snapshot["id"]
    assert world.catalog.get_snapshot(snapshot["id"]) is None

    made = json.loads(remote("tokens", "create", "--name", "deploy", "--scope", "backup",
                             "--json").stdout)
    assert set(made) == {"name", "scopes", "expires_at", "token"}
    assert [t.name for t in tokens.list_tokens(world.services)] == ["ci", "deploy"]
    assert remote("tokens", "revoke", "deploy").stdout == "token deploy revoked\n"

    cloned = remote("volumes", "clone", "scratch", "scratch-2", "--json")
    assert json.loads(cloned.stdout)["target"] == "scratch-2", cloned.output
    assert remote("volumes", "rm", "scratch-2").stdout == "removed volume scratch-2\n"


def test_catalog_rebuild_through_the_server_reports_as_locally(
        world: FakeWorld, local: Run, remote: Run) -> None:
    seeded(world, local)
    local("catalog", "rebuild")  # whatever the first rebuild changes, the next ones agree
    here, there = local("catalog", "rebuild", "--json"), remote("catalog", "rebuild", "--json")
    assert (there.exit_code, there.stdout) == (here.exit_code, here.stdout)
    assert json.loads(there.stdout)["updated"] >= 3


def test_a_restore_of_the_newest_snapshot_by_tag_goes_through_the_instance_route(
        world: FakeWorld, local: Run, remote: Run) -> None:
    first = seeded(world, local)
    result = remote("restore", "shop-db", "--tag", "release=v1", "--name", "tagged", "--json")
    assert json.loads(result.stdout)["snapshot_id"] == first["id"], result.output
    two = remote("restore", "shop-db", "--tag", "a=1", "--tag", "b=2", "--name", "x")
    assert "one --tag" in one_line(two, 2)


# --- errors ----------------------------------------------------------------------------


def test_a_daemon_side_validation_error_is_exit_2_and_docker_down_is_exit_5(
        world: FakeWorld, local: Run, remote: Run) -> None:
    first = seeded(world, local)
    args = ["restore", first["id"], "--name", "ttl-copy", "--ttl", "10s"]
    assert one_line(remote(*args), 2) == one_line(local(*args), 2)
    world.docker.unreachable = True
    assert one_line(remote("volumes", "ls"), 5) == one_line(local("volumes", "ls"), 5)


def test_a_failed_backup_job_exits_as_the_local_failure_does(
        world: FakeWorld, local: Run, remote: Run) -> None:
    add_db(world, "shop-db")
    world.docker.dump_error = "ERROR: disk on fire"
    here, there = local("backup", "shop-db"), remote("backup", "shop-db")
    assert here.exit_code == there.exit_code == 1
    assert "fake-dump exited 1: ERROR: disk on fire" in cli_line(there, 1)


def test_a_bad_token_is_exit_6_in_one_line_naming_what_to_do_and_never_shown(
        world: FakeWorld, remote: Run) -> None:
    add_db(world)
    secret = "hf_this-is-not-a-valid-token-0123456789"
    result = remote("instances", token=secret)
    line = one_line(result, 6)
    assert SERVER in line and "--token-file" in line and "HOLDFAST_TOKEN" in line
    assert secret not in result.output and secret not in line


def test_a_token_without_the_scope_is_exit_7_naming_the_scope(
        world: FakeWorld, local: Run, remote: Run) -> None:
    first = seeded(world, local)
    reader = json.loads(local("tokens", "create", "--name", "reader", "--scope", "read",
                              "--json").stdout)["token"]
    result = remote("restore", first["id"], "--name", "nope", token=reader)
    line = one_line(result, 7)
    assert "'restore'" in line and "tokens create --scope" in line
    assert reader not in result.output
    assert remote("snapshots", token=reader).exit_code == 0


def test_the_option_wins_over_the_environment_and_a_token_file_works(
        made: list[RemoteTarget], remote: Run, world: FakeWorld, tmp_path: Path) -> None:
    add_db(world)
    assert remote("--token", TEST_TOKEN, "instances", token="wrong").exit_code == 0
    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN + "\n")
    assert remote("--token-file", str(token_file), "instances", token="wrong").exit_code == 0
    assert made[-1].token == TEST_TOKEN and TEST_TOKEN not in repr(made[-1])
    assert "--token-file" in one_line(remote("--token-file", str(tmp_path / "none"),
                                             "instances"), 2)


@pytest.mark.parametrize("url", ["ftp://host", "holdfast.example:8420", "http://",
                                 "http://u:p@host", "http://host/?x=1", "http://host:99999"])
def test_a_server_url_the_cli_cannot_call_is_refused_in_one_line(
        remote: Run, url: str) -> None:
    line = one_line(remote("--server", url, "instances"), 2)
    assert "--server" in line and "u:p" not in line


def test_a_valid_server_url_keeps_its_path_without_the_trailing_slash() -> None:
    assert checked_server("https://ops.example/holdfast/") == "https://ops.example/holdfast"
    with pytest.raises(InvalidInput):
        checked_server("http://host#frag")


def test_serve_and_completion_refuse_a_server(remote: Run) -> None:
    assert "holdfast serve runs only on this machine" in one_line(remote("serve"), 2)


def test_an_unreachable_server_is_exit_5_naming_it(tmp_path: Path) -> None:
    # The real client (no swap): port 9 on the loopback answers nothing.
    result = CliRunner().invoke(app, ["--server", "http://127.0.0.1:9", "--token", "hf_x",
                                      "snapshots"],
                                env={"HOLDFAST_DATA_DIR": str(tmp_path)})
    line = one_line(result, 5)
    assert "http://127.0.0.1:9" in line and "hf_x" not in result.output


def test_an_answer_that_is_not_the_api_is_exit_1_in_one_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy's sign-in page</html>")

    def make(target: RemoteTarget) -> RemoteBackend:
        client = httpx.Client(base_url=target.server, transport=httpx.MockTransport(page))
        return RemoteBackend(client, target.server, *error_classes())

    monkeypatch.setattr(CLI_MODULE, "make_remote", make)
    result = CliRunner().invoke(app, ["--server", SERVER, "snapshots"],
                                env={"HOLDFAST_DATA_DIR": str(tmp_path)})
    assert "not JSON" in one_line(result, 1)


# --- progress and Ctrl-C ---------------------------------------------------------------


def test_a_remote_backup_shows_the_job_s_bytes_as_progress(
        world: FakeWorld, remote: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, size=300_000)
    seen: list[int] = []

    class Recorded:
        def __init__(self, label: str) -> None:
            assert label == "backup shop-db"

        def __enter__(self) -> Callable[[int, float], None]:
            return lambda done, elapsed: seen.append(done)

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(COMMANDS, "Progress", Recorded)
    result = remote("backup", "shop-db", "--json")
    assert result.exit_code == 0, result.output
    assert seen and seen == sorted(seen) and seen[-1] > 0


def test_ctrl_c_while_following_cancels_the_daemon_s_job_and_exits_130(
        world: FakeWorld, remote: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world)
    world.docker.stall = {DUMP}

    class Interrupted:
        def __init__(self, label: str) -> None:
            pass

        def __enter__(self) -> None:
            wait_until(lambda: bool(world.docker.stalled))
            raise KeyboardInterrupt

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(COMMANDS, "Progress", Interrupted)
    result = remote("backup", "shop-db")
    line = cli_line(result, 130)
    assert "cancelled" in line
    [job] = world.catalog.list_jobs()
    assert job.status == "cancelled" and job.id in line
    wait_until(lambda: all(s.status != SnapshotStatus.RUNNING
                           for s in world.catalog.list_snapshots()))


def test_a_start_whose_answer_was_lost_is_retried_with_its_key_and_starts_one_job(
        world: FakeWorld, api: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    add_db(world)
    posts: list[str | None] = []

    class LosesTheFirstAnswer(httpx.BaseTransport):
        """Forwards to the app; the first job start's answer is lost on the way back."""

        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner = inner

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = self.inner.handle_request(request)
            if request.method == "POST":
                posts.append(request.headers.get("Idempotency-Key"))
                if len(posts) == 1:
                    raise httpx.RemoteProtocolError("connection closed", request=request)
            return response

    def make(target: RemoteTarget) -> RemoteBackend:
        client = TestClient(api, base_url=target.server,
                            headers={"Authorization": f"Bearer {target.token}"})
        client._transport = LosesTheFirstAnswer(client._transport)
        return RemoteBackend(client, target.server, *error_classes())

    monkeypatch.setattr(CLI_MODULE, "make_remote", make)
    result = CliRunner().invoke(app, ["--server", SERVER, "--token", TEST_TOKEN, "backup",
                                      "shop-db", "--json"],
                                env={"HOLDFAST_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert len(posts) == 2 and posts[0] is not None and posts[0] == posts[1]
    assert len(world.catalog.list_jobs()) == 1
    assert [s.id for s in world.catalog.list_snapshots()] == [json.loads(result.stdout)["id"]]


def test_a_missing_ca_bundle_is_refused_in_one_line(remote: Run, tmp_path: Path) -> None:
    line = one_line(remote("--ca-bundle", str(tmp_path / "none.pem"), "instances"), 2)
    assert "--ca-bundle" in line


def test_an_answer_of_another_shape_is_exit_1_in_one_line(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def listing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=["not", "an", "object"])

    def make(target: RemoteTarget) -> RemoteBackend:
        client = httpx.Client(base_url=target.server, transport=httpx.MockTransport(listing))
        return RemoteBackend(client, target.server, *error_classes())

    monkeypatch.setattr(CLI_MODULE, "make_remote", make)
    result = CliRunner().invoke(app, ["--server", SERVER, "pin", "abcdef123"],
                                env={"HOLDFAST_DATA_DIR": str(tmp_path)})
    assert "not Holdfast's API" in one_line(result, 1)
