"""Named-volume management decided as pure functions of what the engine reports.

``holdfast volumes rm`` and ``clone`` (and ``restore --force``) are shaped
"decide, then apply": the service reads the volumes and their users from
Docker into :class:`VolumeInfo` records, these functions decide what may
happen or raise a one-line error, and only then does the service touch a
volume. Nothing here imports docker-py. Names follow :mod:`backup.names`;
labels a user gives a new volume are checked by :func:`check_volume_labels`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from backup.errors import InvalidInput, InvalidName, NameTaken, VolumeInUse, VolumeNotFound
from backup.names import check_volume_name, is_volume_name, shown
from backup.types import isoformat

__all__ = ["CLONED_FROM_LABEL", "LABELS_MAX", "LABEL_KEY_MAX", "LABEL_VALUE_MAX", "ClonePlan",
           "VolumeInfo", "VolumeUser", "check_volume_labels", "check_volume_name",
           "decide_clone", "decide_removal", "is_volume_name"]

CLONED_FROM_LABEL = "holdfast.cloned-from"
# Docker sets no limits on labels. These keep one volume's labels within a few
# tens of KiB (64 x (128 + 1024) characters), well inside the API's body limit
# and a line a table can still cut short, and are far above what labels are
# used for (reverse-DNS keys, short values).
LABELS_MAX = 64
LABEL_KEY_MAX = 128
LABEL_VALUE_MAX = 1024


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


def check_volume_labels(labels: Mapping[str, str]) -> None:
    """Raise :class:`InvalidInput` (one line) unless ``labels`` are at most
    :data:`LABELS_MAX` pairs of a non-empty key of at most :data:`LABEL_KEY_MAX`
    characters and a value of at most :data:`LABEL_VALUE_MAX`, neither holding
    a control character (NUL, newline, tab, DEL, C1): labels are plain text that
    listings print and scripts split on."""
    if len(labels) > LABELS_MAX:
        raise InvalidInput(f"a volume takes at most {LABELS_MAX} labels, not {len(labels)}")
    for key, value in labels.items():
        if not key:
            raise InvalidInput("a volume label needs a key: an empty key is not allowed")
        if len(key) > LABEL_KEY_MAX:
            raise InvalidInput(f"volume label key {shown(key)} is longer than "
                               f"{LABEL_KEY_MAX} characters")
        if len(value) > LABEL_VALUE_MAX:
            raise InvalidInput(f"the value of volume label {shown(key)} is longer than "
                               f"{LABEL_VALUE_MAX} characters")
        for what, text in (("the key of", key), ("the value of", value)):
            control = next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)
            if control is not None:
                raise InvalidInput(
                    f"{what} volume label {shown(key)} holds the control character "
                    f"U+{ord(control):04X}; labels are plain text")


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
