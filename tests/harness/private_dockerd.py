"""A private Docker engine for tests that stop it or let a tool loose on it.

:class:`PrivateDockerd` runs a second dockerd (with its own containerd, data
root and exec root under one directory in /tmp) in a network namespace of its
own, so a test can stop and start it, or point a daemon (and whatever that
daemon is asked to delete) at it, without touching the shared engine or anyone
else's containers. It starts empty: a test loads the images it needs
(:meth:`PrivateDockerd.load_image`) and creates its own containers.
:meth:`PrivateDockerd.close` stops it, kills what it left running, unmounts
and removes its directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import docker
from docker.errors import DockerException

__all__ = ["PrivateDockerd"]


class PrivateDockerd:
    """A second dockerd (with its own containerd, in a network namespace of its
    own) that a test may stop and start without touching the shared engine.
    Everything lives under one short directory in /tmp (unix socket paths are
    limited to 108 bytes)."""

    def __init__(self, reflink_size: str | None = None) -> None:
        """With ``reflink_size`` (``"12G"``), the data root is a loop-mounted XFS
        of that size made with ``reflink=1`` (sparse: it takes what is written),
        so the engine's volumes can share blocks (``cp --reflink``)."""
        self.root = Path(tempfile.mkdtemp(prefix="hf-dockerd2-", dir="/tmp"))
        self.reflink_size = reflink_size
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()

    def argv(self) -> list[str]:
        dockerd, unshare = shutil.which("dockerd"), shutil.which("unshare")
        assert dockerd and unshare, "dockerd and unshare (util-linux) are needed"
        # A network namespace of its own: with --bridge none, dockerd deletes any
        # interface named docker0 it can see (removeDefaultBridgeInterface), which
        # in the host namespace is the shared engine's default bridge.
        return [unshare, "--net", dockerd, "--host", self.host,
                "--data-root", str(self.root / "data"), "--exec-root", str(self.root / "exec"),
                "--pidfile", str(self.root / "docker.pid"),
                "--bridge", "none", "--iptables=false", "--ip-masq=false"]

    def _mount_reflink_data_root(self) -> None:
        data, image = self.root / "data", self.root / "xfs.img"
        if data.is_mount() or self.reflink_size is None:
            return
        assert shutil.which("mkfs.xfs"), "mkfs.xfs is needed (apt-get install xfsprogs)"
        data.mkdir(exist_ok=True)
        subprocess.run(["truncate", "-s", self.reflink_size, str(image)], check=True)
        subprocess.run(["mkfs.xfs", "-q", "-m", "reflink=1", str(image)], check=True,
                       capture_output=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(data)], check=True,
                       capture_output=True)

    def start(self, timeout: float = 60) -> None:
        assert not self.running(), "the private dockerd is already running"
        self._mount_reflink_data_root()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        self.pids.add(self.process.pid)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the private dockerd exited ({self.process.returncode}):\n"
                                     f"{self.log_tail()}")
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the private dockerd did not answer within {timeout:.0f}s:"
                                     f"\n{self.log_tail()}")
            time.sleep(0.25)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def answers(self) -> bool:
        try:
            client = self.client()
        except (DockerException, OSError):
            return False
        try:
            return bool(client.ping())
        except (DockerException, OSError):
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as an engine restart or a service stop would; wait for the exit."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
                raise AssertionError(f"the private dockerd ignored SIGTERM for {timeout:.0f}s; "
                                     "killed it") from None

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.host, timeout=60)

    def load_image(self, image: str) -> None:
        """``docker save IMAGE | docker -H <private> load``."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        assert save.stdout is not None
        load = subprocess.run(["docker", "-H", self.host, "load"], stdin=save.stdout,
                              capture_output=True, text=True, timeout=300, check=False)
        save.stdout.close()
        assert save.wait(timeout=60) == 0, f"docker save {image} failed"
        assert load.returncode == 0, f"docker load into the private engine failed: {load.stderr}"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _own_leftovers(self) -> list[int]:
        """Processes started for this engine that outlived it (its containerd and
        shims): their command lines name this engine's unique directory."""
        found = []
        marker = str(self.root).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        return found

    def close(self) -> None:
        """Stop the engine if it runs, kill what it left behind, unmount and remove its dirs."""
        problems = []
        if self.running():
            try:
                self.stop(timeout=60)
            except AssertionError as exc:
                problems.append(str(exc))
        for pid in self._own_leftovers():
            problems.append(f"process {pid} of the private engine outlived it; killed")
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))
