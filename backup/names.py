"""Names Holdfast gives Docker objects, checked before the engine sees them.

Docker's grammar for container and volume names is
``[a-zA-Z0-9][a-zA-Z0-9_.-]+`` (moby's ``daemon/names.RestrictedNamePattern``:
at least two characters). It sets no length limit of its own, so each kind
gets one here, so that a long name is a clear 400 and not the engine's 500:

* a volume name is at most :data:`VOLUME_NAME_MAX` = 255 bytes, because the
  local driver makes a directory of that name under ``/var/lib/docker/volumes``
  and 255 bytes is the longest file name Linux file systems (ext4, xfs, btrfs,
  overlay) allow; a 256-byte name fails there with "file name too long";
* a container name is at most :data:`CONTAINER_NAME_MAX` = 128 characters, the
  limit of an instance name (``backup.labels.NAME_PATTERN``), because a restored
  container becomes an instance under its own name; the volumes a restore
  derives from it (``<name>-data``) then stay well within 255.

Names are matched whole (``fullmatch``): ``$`` would also match before a
trailing newline.
"""

from __future__ import annotations

import re

from backup.errors import InvalidName

DOCKER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
VOLUME_NAME_MAX = 255
CONTAINER_NAME_MAX = 128
VOLUME_NAME_PATTERN = rf"^[a-zA-Z0-9][a-zA-Z0-9_.-]{{1,{VOLUME_NAME_MAX - 1}}}$"
"""A volume name Holdfast takes (:func:`check_volume_name`), as a JSON Schema ``pattern``."""
CONTAINER_NAME_PATTERN = rf"^[a-zA-Z0-9][a-zA-Z0-9_.-]{{1,{CONTAINER_NAME_MAX - 1}}}$"
"""A container name Holdfast takes (:func:`check_container_name`), as a JSON Schema ``pattern``."""
_SHOWN_MAX = 60


def shown(name: str) -> str:
    """``name`` quoted for a message, cut short: it may be anything a user sent."""
    if len(name) <= _SHOWN_MAX:
        return repr(name)
    return f"{name[:_SHOWN_MAX - 3]!r}... ({len(name)} characters)"


def _check(kind: str, name: str, limit: int) -> None:
    if len(name.encode()) > limit:
        raise InvalidName(f"cannot name a {kind} {shown(name)}: names are at most {limit} "
                          "characters")
    if DOCKER_NAME.fullmatch(name) is None:
        raise InvalidName(f"cannot name a {kind} {shown(name)}: use 2 to {limit} letters, "
                          "digits and _.- , starting with a letter or digit")


def is_volume_name(name: str) -> bool:
    """Whether a volume of this name can exist: a name that cannot is never
    sent to the engine (docker-py puts it in a URL path unescaped, where
    ``../containers/x`` would name another object)."""
    return len(name.encode()) <= VOLUME_NAME_MAX and DOCKER_NAME.fullmatch(name) is not None


def check_volume_name(name: str) -> None:
    """Raise :class:`InvalidName` unless Docker can create a volume ``name``."""
    _check("volume", name, VOLUME_NAME_MAX)


def check_container_name(name: str) -> None:
    """Raise :class:`InvalidName` unless ``name`` is a Docker container name that
    is also an instance name."""
    _check("container", name, CONTAINER_NAME_MAX)
