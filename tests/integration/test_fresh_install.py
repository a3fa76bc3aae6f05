"""The README's install command on a fresh Debian bookworm with only Debian's python3.

A new container of ``holdfast-test/base:bookworm`` (the debootstrapped Debian the
harness builds) gets ``apt-get install -y python3`` and nothing else: no
python3-venv, so no ensurepip, and a system Python that refuses ``pip install``
(PEP 668). The checkout is bind-mounted read-only and copied to a writable
directory without ``.venv`` and ``.git``, as a fresh clone would be. Then the
install line of the README's opening block runs exactly as written (it is read
out of README.md, so the test follows the text) and must end with the daemon
answering ``/healthz``, with ``DOCKER_HOST`` pointing at a socket that does not
exist: the process is up without any engine. ``.venv/bin/holdfast --version`` must
name the version in pyproject.toml, and a second run of the installer must reuse
the venv.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import subprocess
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.harness.daemon import REPO_ROOT, free_port
from tests.harness.docker_fixtures import TEST_LABEL, require_image

pytestmark = pytest.mark.docker

BASE_IMAGE = "holdfast-test/base:bookworm"
CA_IN_CONTAINER = "/run/holdfast-test/host-ca.crt"
# apt, and pip's downloads of the dependencies, on a cold container.
INSTALL_TIMEOUT_S = 900.0
_OPENING_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def readme_install_line() -> str:
    """The opening block's command line that starts with the installer, comment removed."""
    block = _OPENING_BLOCK.search((REPO_ROOT / "README.md").read_text())
    assert block, "README.md has no opening ```sh block"
    for line in block.group(1).splitlines():
        if line.startswith("python3 -m service.install"):
            return re.sub(r"\s+#.*$", "", line)
    raise AssertionError("the README's opening block has no `python3 -m service.install` line")


def host_ca_bundle() -> Path | None:
    """The CA bundle this machine's pip is told to use (PIP_CERT or pip.conf's cert),
    if any: where TLS to the index goes through an inspecting proxy, the container
    needs the same trust, and gets it read-only for that alone."""
    configured = os.environ.get("PIP_CERT")
    if not configured:
        parser = configparser.ConfigParser()
        parser.read(["/etc/pip.conf", "/etc/xdg/pip/pip.conf"])
        configured = parser.get("global", "cert", fallback=None)
    return Path(configured) if configured and Path(configured).is_file() else None


def docker(args: Sequence[str], *, timeout: float = 120.0, check: bool = True,
           ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check:
        assert proc.returncode == 0, (
            f"docker {' '.join(args)[:300]} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture
def fresh_debian(docker_client: Any) -> Iterator[tuple[str, int]]:
    """A running bookworm container with only Debian's python3 and the checkout in /work;
    its name and the port its daemon is to use."""
    require_image(docker_client, BASE_IMAGE)
    name = f"hf-test-fresh-install-{secrets.token_hex(4)}"
    port = free_port()
    # --network host is the one sanctioned exception to the tests' internal
    # networks: this test is about installing from the package registries (apt
    # from the Debian mirror, pip from PyPI), which an internal network cannot
    # reach. Nothing else is contacted; the daemon listens on 127.0.0.1 only.
    options = ["--network", "host", "--label", f"{TEST_LABEL}=1",
               "-v", f"{REPO_ROOT}:/src:ro",
               "-e", "DOCKER_HOST=unix:///nonexistent/docker.sock",
               "-e", f"HOLDFAST_API_PORT={port}", "-e", "DEBIAN_FRONTEND=noninteractive"]
    ca = host_ca_bundle()
    if ca is not None:
        options += ["-v", f"{ca}:{CA_IN_CONTAINER}:ro",
                    "-e", f"PIP_CERT={CA_IN_CONTAINER}", "-e", f"SSL_CERT_FILE={CA_IN_CONTAINER}"]
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                     "no_proxy"):
        if os.environ.get(variable):
            options += ["-e", f"{variable}={os.environ[variable]}"]
    docker(["run", "-d", "--name", name, *options, BASE_IMAGE, "sleep", "infinity"])
    try:
        docker(["exec", name, "sh", "-ec",
                "apt-get update -qq && apt-get install -y -qq python3 >/tmp/apt.log 2>&1 "
                "|| { tail -n 30 /tmp/apt.log; exit 1; }"], timeout=600)
        docker(["exec", name, "sh", "-ec",
                "mkdir /work && tar -C /src --exclude=./.venv --exclude=./.git "
                "--exclude=./.codegen -cf - . | tar -C /work -xf -"])
        yield name, port
    finally:
        docker(["rm", "-f", "-v", name], check=False)


_WAIT_FOR_HEALTHZ = """
import json, sys, time, urllib.request
port, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
last = "nothing yet"
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            print(json.dumps({"status": r.status, "body": json.loads(r.read())}))
            sys.exit(0)
    except Exception as error:
        last = repr(error)
    time.sleep(1)
print(json.dumps({"status": None, "last": last}))
"""


def test_the_readme_install_command_works_on_fresh_debian(fresh_debian: tuple[str, int]) -> None:
    name, port = fresh_debian
    line = readme_install_line()
    assert "holdfast serve" in line, f"the install line should start the daemon: {line}"
    # Exactly the README's line, in the background: it installs, then serves.
    docker(["exec", "-d", "-w", "/work", name, "bash", "-c", f"({line}) >/tmp/readme.log 2>&1"])
    waited = docker(["exec", name, "python3", "-c", _WAIT_FOR_HEALTHZ, str(port),
                     str(INSTALL_TIMEOUT_S)], timeout=INSTALL_TIMEOUT_S + 60)
    log = docker(["exec", name, "tail", "-n", "60", "/tmp/readme.log"], check=False).stdout
    result = json.loads(waited.stdout.strip().splitlines()[-1])
    assert result["status"] == 200, f"/healthz never answered: {result}\n--- log ---\n{log}"
    assert result["body"]["status"] == "ok", result
    # The system Python stayed as Debian shipped it: no ensurepip, and pip refused
    # there, so the venv's pip was bootstrapped by the installer.
    assert "bootstrapping pip-" in log, log
    assert docker(["exec", name, "python3", "-c", "import ensurepip"], check=False).returncode

    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    shown = docker(["exec", "-w", "/work", name, ".venv/bin/holdfast", "--version"]).stdout
    assert version in shown.split(), shown

    # Idempotent: the second run reuses the venv (pip is already in it) and succeeds.
    again = docker(["exec", "-w", "/work", name, "python3", "-m", "service.install"],
                   timeout=INSTALL_TIMEOUT_S)
    assert "bootstrapping" not in again.stdout, again.stdout
    assert "installed into .venv" in again.stdout, again.stdout
