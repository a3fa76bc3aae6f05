"""The README's five-minute walkthrough, run as written against the real engine.

The shell blocks are read out of README.md at test time, so the test follows the
text: if a step of the README stops working, this fails. Only what a shared
test engine requires is changed, each by a plain textual substitution: names get
a unique prefix (another session may have a ``shop-db``), containers join the
internal test network and carry the test label, the port is a free one, and the
install line is dropped (``tests/integration/test_fresh_install.py`` runs it in a
fresh container; here ``holdfast`` is this interpreter's).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from tests.harness.daemon import REPO_ROOT, free_port, holdfast_env
from tests.harness.docker_fixtures import TEST_LABEL

pytestmark = pytest.mark.docker

_SECTION = re.compile(r"^## Five-minute walkthrough\n(.*?)^## ", re.S | re.M)
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
_INSTALL_LINE = re.compile(r"^(pip install|python3 -m service\.install)\b.*$", re.M)


def walkthrough_blocks() -> list[str]:
    """The walkthrough's shell blocks, in README order (the steps, then the clean-up)."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = _SECTION.search(readme)
    assert section, "README.md has no '## Five-minute walkthrough' section"
    blocks = _SH_BLOCK.findall(section.group(1))
    assert len(blocks) >= 2, "the walkthrough should have its steps and a clean-up block"
    return blocks


def adapt_for_shared_engine(script: str, prefix: str, network: str, port: int) -> str:
    """The substitutions the module docstring lists, and nothing else."""
    assert _INSTALL_LINE.search(script), "the walkthrough should start by installing"
    script = _INSTALL_LINE.sub(": install step covered by test_fresh_install", script)
    script = re.sub(r"\bshop-", f"{prefix}-shop-", script)
    script = script.replace("docker run -d ",
                            f"docker run -d --network {network} -l {TEST_LABEL}=1 ")
    script = script.replace("docker volume create ",
                            f"docker volume create --label {TEST_LABEL}=1 ")
    return script.replace("8420", str(port))


def shim_directory(tmp_path: Path) -> Path:
    """A directory with ``holdfast`` running this interpreter's checkout, for PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "holdfast"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m service.entrypoints.cli "$@"\n')
    shim.chmod(0o755)
    return bin_dir


def test_the_walkthrough_runs_as_written_and_restores_every_row(
    tmp_path: Path, docker_client: docker.DockerClient, test_network: str, postgres_image: str,
) -> None:
    prefix = f"wt{uuid.uuid4().hex[:6]}"
    port = free_port()
    steps, cleanup = walkthrough_blocks()[:2]
    script = "set -eu\n" + adapt_for_shared_engine(steps + cleanup, prefix, test_network, port)
    env = holdfast_env(tmp_path / "data", {"PG_IMAGE": postgres_image,
                                           "HOLDFAST_API_PORT": str(port)})
    env["PATH"] = f"{shim_directory(tmp_path)}:{env['PATH']}"
    # Its own session, so a failed run's background daemon goes with the group.
    proc = subprocess.Popen(["bash", "-c", script], env=env, cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=600)
        transcript = f"--- stdout\n{stdout}\n--- stderr\n{stderr[-4000:]}"
        assert proc.returncode == 0, transcript
        lines = stdout.splitlines()
        assert "100000" in lines, f"the restored copy should count 100000 orders\n{transcript}"
        # curl prints the body without a newline: the next command's output follows it.
        jobs = [json.JSONDecoder().raw_decode(line)[0] for line in lines if line.startswith("{")]
        assert any(job.get("kind") == "backup" for job in jobs), \
            f"step 6's curl should print the backup job\n{transcript}"
        for name in (f"{prefix}-shop-db", f"{prefix}-shop-db-copy"):
            with pytest.raises(NotFound):
                docker_client.containers.get(name)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        _remove_leftovers(docker_client, prefix)


def _remove_leftovers(client: docker.DockerClient, prefix: str) -> None:
    """Whatever a failed run left, by this test's unique prefix only."""
    for container in client.containers.list(all=True, filters={"name": prefix}):
        if container.name.startswith(prefix):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": prefix}):
        if volume.name.startswith(prefix):
            volume.remove(force=True)
