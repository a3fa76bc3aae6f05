"""Named-volume management decided as pure functions of what the engine reports.

``holdfast volumes rm`` and ``clone`` (and ``restore --force``) are shaped
"decide, then apply": the service reads the volumes and their users from
Docker into :class:`VolumeInfo` records, these functions decide what may
happen or raise a one-line error, and only then does the service touch a
volume. Nothing here imports docker-py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup.errors import InvalidName, NameTaken, VolumeInUse, VolumeNotFound
from backup.types import isoformat

# Docker's own rule for volume names (daemon/names.RestrictedNamePattern).
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
CLONED_FROM_LABEL = "holdfast.cloned-from"


@dataclass(frozen=True)
class VolumeUser:
    """A container that mounts a volume."""

    name: str
    id: str
    running: bool

    def describe(self) -> str:
        return f"{self.name} ({'running' if self.running else 'stopped'})"


@dataclass(frozen=True)
class VolumeInfo:
    name: str
    driver: str = "local"
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    size_bytes: int | None = None
    """Bytes used on disk as Docker reports them; None when it cannot tell
    (drivers other than ``local``, or sizes not asked for)."""
    users: tuple[VolumeUser, ...] = ()

    @property
    def in_use(self) -> bool:
        return bool(self.users)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "driver": self.driver,
            "labels": dict(sorted(self.labels.items())),
            "created_at": isoformat(self.created_at),
            "size_bytes": self.size_bytes,
            "users": [{"name": u.name, "id": u.id, "running": u.running} for u in self.users],
            "in_use": self.in_use,
        }


def check_volume_name(name: str) -> None:
    if not VOLUME_NAME.fullmatch(name):
        raise InvalidName(
            f"cannot name a volume {name!r}: use letters, digits and _.- "
            "(at least 2 characters, starting with a letter or digit)"
        )


def _users_text(users: tuple[VolumeUser, ...]) -> str:
    return ", ".join(user.describe() for user in users)


def decide_removal(volume: VolumeInfo | None, name: str) -> VolumeInfo:
    """The volume to remove, or the reason it must stay: missing, or mounted by
    any container, running or stopped (Docker would refuse too, less clearly)."""
    if volume is None:
        raise VolumeNotFound(f"no volume named {name}; `holdfast volumes ls` lists them")
    if volume.users:
        raise VolumeInUse(
            f"volume {name} is used by container {_users_text(volume.users)}; "
            "remove those containers first, then retry"
        )
    return volume


@dataclass(frozen=True)
class ClonePlan:
    source: str
    target: str
    create_target: bool
    """False when ``--force`` reuses an existing target, which is emptied first."""
    labels: Mapping[str, str]


def decide_clone(source: VolumeInfo | None, target: VolumeInfo | None, *,
                 source_name: str, target_name: str, force: bool = False) -> ClonePlan:
    """Decide a ``clone SRC DST``.

    A missing source, a bad target name or cloning onto itself is refused. An
    existing target is written only with ``force``, and even then never while
    a container uses it: its files would change under a live process. The
    source may be in use; the copy is then as consistent as a live copy is.
    """
    if source is None:
        raise VolumeNotFound(f"no volume named {source_name}; `holdfast volumes ls` lists them")
    check_volume_name(target_name)
    if source_name == target_name:
        raise InvalidName("source and target are the same volume; choose another target name")
    if target is not None:
        if not force:
            raise NameTaken(
                f"volume {target_name} already exists; choose another name, or pass "
                "--force to replace its contents with a copy of " + source_name
            )
        if target.users:
            raise VolumeInUse(
                f"volume {target_name} is used by container {_users_text(target.users)}; "
                "a clone never writes under a container: remove or stop-and-remove it first"
            )
    return ClonePlan(source=source_name, target=target_name, create_target=target is None,
                     labels={CLONED_FROM_LABEL: source_name})
