"""Use cases for age keys: make an identity file, and tell which keys a value holds.

``holdfast keys generate`` writes a fresh X25519 identity to a new file that
only its owner can read (created with mode 0600 and ``O_EXCL``, so an existing
file, perhaps the only copy of an identity, is never overwritten) and returns
the recipient to configure. :func:`describe_keys` gives the fingerprints of a
recipient, a recipients file or an identity file: the same ``age:``/``SHA256:``
values a manifest records and a refused restore lists, so a user can tell
which of their keys opens a snapshot. Neither ever returns a secret key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backup.encryption import (
    OPENSSH_BEGIN,
    fingerprint,
    load_identities,
    new_identity,
    parse_recipients,
)
from backup.errors import InvalidIdentity, InvalidInput, InvalidRecipients, KeyFileExists

if TYPE_CHECKING:
    from service.settings import Settings


@dataclass(frozen=True)
class GeneratedKey:
    identity_file: str
    recipient: str
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {"identity_file": self.identity_file, "recipient": self.recipient,
                "fingerprint": self.fingerprint}


def generate_identity_file(path: Path) -> GeneratedKey:
    """Write a new identity to ``path`` (mode 0600, never over an existing
    file) and return its public recipient. :class:`KeyFileExists` if ``path``
    exists; :class:`InvalidInput` if it cannot be created."""
    text, recipient = new_identity()
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileExists(f"{path} exists; an identity file is never overwritten, "
                            "choose a new path") from None
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return GeneratedKey(identity_file=str(path), recipient=recipient,
                        fingerprint=fingerprint(recipient))


@dataclass(frozen=True)
class KeyDescription:
    kind: str
    """``recipient`` (public) or ``identity`` (secret: only its fingerprint is shown)."""
    fingerprint: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "fingerprint": self.fingerprint}


def describe_keys(value: str) -> list[KeyDescription]:
    """The fingerprints in ``value``: a recipient, a comma list of them, a
    recipients file, or an identity file (age or OpenSSH)."""
    path = Path(value).expanduser()
    if path.is_file() and _is_identity_file(path):
        identities = load_identities(path)
        return [KeyDescription("identity", print_) for print_ in sorted(identities.fingerprints)]
    try:
        recipients = parse_recipients(value, source="the value given")
    except InvalidRecipients as exc:
        raise InvalidRecipients(f"{exc}; give a recipient, a recipients file or an "
                                "identity file") from None
    return [KeyDescription("recipient", print_) for print_ in recipients.fingerprints]


def _is_identity_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(64 * 1024)
    except OSError as exc:
        raise InvalidIdentity(f"cannot read {path}: {exc.strerror or exc}") from None
    return b"AGE-SECRET-KEY-1" in head or OPENSSH_BEGIN.encode() in head


def check_key_settings(settings: Settings) -> list[str]:
    """Parse every target's recipients and read the identity file, so a daemon
    with a bad key setting refuses to start (one line naming the setting)
    instead of failing each backup later. Returns one line per target that
    encrypts, and one for the identity, for the start-up log (fingerprints only)."""
    lines = []
    for target in sorted(settings.targets):
        setting = settings.recipients_setting(target)
        if setting is not None:
            recipients = parse_recipients(setting[1], source=setting[0])
            lines.append(f"target {target} encrypts to {', '.join(recipients.fingerprints)} "
                         f"({setting[0]})")
    if settings.identity_file is not None:
        identities = load_identities(settings.identity_file)
        lines.append(f"encrypted snapshots are read with {settings.identity_file} "
                     f"({', '.join(sorted(identities.fingerprints)) or 'SSH key'})")
    return lines


__all__ = [
    "GeneratedKey",
    "KeyDescription",
    "check_key_settings",
    "describe_keys",
    "fingerprint",
    "generate_identity_file",
]
