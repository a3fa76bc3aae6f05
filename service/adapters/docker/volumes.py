"""Named volumes: created, listed with their users and sizes, emptied, copied, removed.

:class:`Volumes` is the volume half of :class:`backup.ports.ContainerRuntime`
and the volume side of :class:`service.ports.VolumeAdmin`. Work inside a volume
(emptying, copying) runs in helper containers, so it needs no tools in any
user's image. Docker's own answers are read by status: a 404 is a missing
volume, a 409 on removal a volume some container still mounts.

Sizes come from the engine's disk-usage walk (``docker system df -v``), which
Docker runs one at a time and refuses to start while another runs: the walks of
this process are serialised by one lock and their result is kept for
:data:`DISK_USAGE_TTL` seconds (dropped when this adapter changes a volume), so
concurrent listings share one walk; a walk another client started is waited for.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping
from typing import Any

from backup.errors import DockerBusy, NameTaken, NotFound, VolumeInUse, VolumeNotFound
from backup.ports import VolumeCopy, VolumeSpec
from backup.volumes import VolumeInfo, VolumeUser
from service.adapters.docker.connection import DockerConnection, parse_docker_time
from service.adapters.docker.helpers import Helpers

DISK_USAGE_TTL = 3.0
"""Seconds a disk-usage walk's sizes are reused: long enough for a burst of
listings to share one walk, short enough that sizes are as fresh as a listing
the user repeats."""
BUSY_WAIT = 30.0
"""Seconds to wait for a disk-usage walk another client (``docker system df``,
another Holdfast) is running before answering :class:`DockerBusy`."""


class Volumes:
    """The named volumes of one engine."""

    def __init__(self, connection: DockerConnection, helpers: Helpers) -> None:
        self._connection = connection
        self._helpers = helpers
        self._usage_lock = threading.Lock()  # held during a walk
        self._state_lock = threading.Lock()  # guards the two below, never held long
        self._generation = 0  # bumped by every change to a volume made here
        self._usage: tuple[int, float, dict[str, int]] | None = None

    def _sizes(self) -> dict[str, int]:
        """Bytes used by each volume the engine can measure (the local driver),
        from one disk-usage walk shared by every caller within the TTL."""
        with self._usage_lock:
            with self._state_lock:
                cached, generation = self._usage, self._generation
            if cached is not None and cached[0] == generation \
                    and time.monotonic() - cached[1] < DISK_USAGE_TTL:
                return cached[2]
            measured: dict[str, int] = {}
            for entry in self._disk_usage().get("Volumes") or []:
                size = (entry.get("UsageData") or {}).get("Size", -1)
                if size is not None and size >= 0:
                    measured[entry["Name"]] = int(size)
            with self._state_lock:
                # A volume changed during the walk: these sizes may predate it.
                if self._generation == generation:
                    self._usage = (generation, time.monotonic(), measured)
            return measured

    def _disk_usage(self) -> dict[str, Any]:
        deadline = time.monotonic() + BUSY_WAIT
        pause = 0.1
        while True:
            try:
                return dict(self._connection.call(self._connection.api.df))
            except DockerBusy as exc:
                if time.monotonic() + pause > deadline:
                    raise DockerBusy(
                        "the Docker engine is still measuring disk usage for another "
                        f"client after {BUSY_WAIT:.0f}s; retry later, or list without "
                        "sizes") from exc
                time.sleep(pause)
                pause = min(pause * 2, 2.0)

    def _forget_sizes(self) -> None:
        """Called after this adapter changed a volume: the next size is measured."""
        with self._state_lock:
            self._generation += 1
            self._usage = None

    def volume_exists(self, name: str) -> bool:
        try:
            self._connection.call(lambda: self._connection.api.inspect_volume(name))
        except NotFound:
            return False
        return True

    def volume_names(self) -> set[str]:
        volumes = self._connection.call(self._connection.api.volumes).get("Volumes") or []
        return {volume["Name"] for volume in volumes}

    def create_volume(self, spec: VolumeSpec) -> None:
        if self.volume_exists(spec.name):
            raise NameTaken(f"volume {spec.name} already exists")
        try:
            self._connection.call(lambda: self._connection.api.create_volume(
                name=spec.name, labels=dict(spec.labels)))
        finally:
            self._forget_sizes()

    def _volume_users(self) -> dict[str, list[VolumeUser]]:
        users: dict[str, list[VolumeUser]] = {}
        for summary in self._connection.call(lambda: self._connection.api.containers(all=True)):
            names = summary.get("Names") or [summary["Id"][:12]]
            user = VolumeUser(name=names[0].lstrip("/"), id=summary["Id"],
                              running=summary.get("State") == "running")
            for mount in summary.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users.setdefault(mount["Name"], []).append(user)
        return users

    def list_volumes(self, sizes: bool = True) -> list[VolumeInfo]:
        """Every volume with its users; ``sizes`` asks Docker to measure them
        (``docker system df -v``), which walks every volume and takes a while."""
        listed = self._connection.call(self._connection.api.volumes).get("Volumes") or []
        measured = self._sizes() if sizes else {}
        users = self._volume_users()
        return sorted((_to_volume(data, users.get(data["Name"], []), measured.get(data["Name"]))
                       for data in listed), key=lambda volume: volume.name)

    def get_volume(self, name: str, size: bool = False) -> VolumeInfo | None:
        try:
            data = self._connection.call(lambda: self._connection.api.inspect_volume(name))
        except NotFound:
            return None
        measured = self._sizes().get(name) if size else None
        return _to_volume(data, self._volume_users().get(name, []), measured)

    def empty_volume(self, name: str) -> None:
        """Delete everything inside a volume (for ``--force`` reuse)."""
        try:
            self._helpers.helper_run(["sh", "-c", "find /volume -mindepth 1 -delete"],
                                     volumes={name: "/volume"})
        finally:
            self._forget_sizes()

    def copy_volume(self, source: str, target: str) -> VolumeCopy:
        """Make ``target`` an exact copy of ``source``: owners, modes, links,
        hard links and holes of sparse files kept; ``target`` is emptied first.
        Reflinks where the data root's filesystem has them (XFS ``reflink=1``,
        btrfs), else a plain copy: the answer says which, and why."""
        try:
            result = self._helpers.helper_run(["sh", "-c", _COPY_SCRIPT],
                                              volumes={source: "/from", target: "/to"})
        finally:  # sizes measured before or during the copy are wrong after it
            self._forget_sizes()
        return copy_answer(result.stdout.decode(errors="replace"))

    def remove_volume(self, name: str) -> None:
        """Remove a volume; a missing one is not an error, one a container
        mounts is :class:`VolumeInUse` (Docker refuses even with force)."""
        with contextlib.suppress(NotFound):
            self._connection.call(
                lambda: self._connection.api.remove_volume(name, force=True),
                conflict=lambda refused: VolumeInUse(f"volume {name} is in use: {refused}"))
        self._forget_sizes()

    def remove_unused_volume(self, name: str) -> None:
        """Remove a volume no container uses; Docker's refusal (409: a container
        mounted it a moment ago) becomes :class:`VolumeInUse`, its 404
        :class:`VolumeNotFound`."""
        try:
            self._connection.call(
                lambda: self._connection.api.remove_volume(name),
                conflict=lambda refused: VolumeInUse(f"volume {name} is in use: {refused}"))
        except NotFound as exc:
            raise VolumeNotFound(f"no volume named {name}") from exc
        self._forget_sizes()


def _to_volume(data: Mapping[str, Any], users: list[VolumeUser],
               size: int | None) -> VolumeInfo:
    created_at = parse_docker_time(data.get("CreatedAt"))
    return VolumeInfo(name=data["Name"], driver=data.get("Driver") or "local",
                      labels=dict(data.get("Labels") or {}), created_at=created_at,
                      size_bytes=size, users=tuple(sorted(users, key=lambda u: u.name)))


# cp -a keeps owners (the helper runs as root), modes, timestamps, symlinks and
# hard links; copying "/from/." also gives the target's root directory the
# source root's owner and mode. One file is cloned first as a probe, so a
# filesystem without reflinks is told from a copy that fails for another
# reason (a full disk fails either way, and is reported).
_PROBE = "/to/.holdfast-reflink-probe"
_COPY_SCRIPT = f"""set -e
find /to -mindepth 1 -delete
probe=$(find /from -type f -size +0 -print -quit)
if [ -z "$probe" ]; then
  cp -a /from/. /to/; echo copy
elif err=$(cp --reflink=always "$probe" {_PROBE} 2>&1); then
  rm -f {_PROBE}; cp -a --reflink=always /from/. /to/; echo reflink
else
  rm -f {_PROBE}; cp -a --sparse=always /from/. /to/; echo "copy $err"
fi
"""


def copy_answer(stdout: str) -> VolumeCopy:
    """The :class:`VolumeCopy` the copy script's last line says: ``reflink``,
    or ``copy`` with cp's complaint about the probe (its last part, e.g.
    ``Operation not supported``)."""
    lines = stdout.strip().splitlines() or ["copy"]
    method, _, complaint = lines[-1].partition(" ")
    if method == "reflink":
        return VolumeCopy(method="reflink")
    reason = complaint.rsplit(": ", 1)[-1].strip()
    return VolumeCopy(method="copy", note=f"no reflinks on this engine's volumes ({reason}): "
                      "copied file by file" if reason else None)
