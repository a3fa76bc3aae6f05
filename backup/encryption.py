"""Client-side encryption of snapshot data with age (through pyrage).

A target with recipients stores every snapshot encrypted to all of them: the
stream is ``dump -> zstd -> age -> storage``, so the bucket only ever sees
ciphertext and the manifest's sha256 is of the encrypted object. Backing up
needs only the public recipients (X25519 ``age1...`` keys, or SSH
``ssh-ed25519``/``ssh-rsa`` public keys); reading a snapshot back needs an
identity, which is read from a file, kept in memory, and never written
anywhere else.

The manifest records the format and the recipients' *fingerprints*, never a
key: ``age:<16 hex>`` (sha256 of the recipient string) for X25519 and the
usual ``SHA256:...`` for SSH keys, as ``ssh-keygen -l`` prints it. A restore
can thus say which keys a snapshot needs, and refuse an identity that is not
one of them before it creates anything.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backup.errors import (
    CorruptSnapshot,
    IdentityRequired,
    InvalidIdentity,
    InvalidRecipients,
    WrongIdentity,
)
from backup.pushpull import pull_through

FORMAT = "age-v1"
"""The manifest's ``encryption`` value for an age-encrypted data object."""
SUFFIX = ".age"
"""Appended to the data object's name when it is encrypted."""
MAX_RECIPIENTS = 64
MAX_KEY_FILE = 64 * 1024
"""Recipients and identity files are small; a bigger one is not one."""
_SSH_TYPES = ("ssh-ed25519", "ssh-rsa")
OPENSSH_BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----"
_OPENSSH_END = "-----END OPENSSH PRIVATE KEY-----"
_SECRET_PREFIX = "AGE-SECRET-KEY-"


def fingerprint(recipient: str) -> str:
    """The fingerprint recorded for ``recipient`` (an ``age1...`` or SSH
    public key line); raises :class:`InvalidRecipients` if it is neither."""
    text = recipient.strip()
    if text.startswith("age1"):
        return "age:" + hashlib.sha256(text.encode()).hexdigest()[:16]
    parts = text.split()
    if len(parts) >= 2 and parts[0] in _SSH_TYPES:
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except ValueError as exc:
            raise InvalidRecipients(f"SSH key {_shown(text)} is not valid base64") from exc
        return _ssh_fingerprint(blob)
    if text.upper().startswith(_SECRET_PREFIX):  # not quoted: part of a secret is a leak
        raise InvalidRecipients("an age identity (secret key) was given where a recipient "
                                "belongs; give its public key (age1..., age-keygen -y FILE)")
    raise InvalidRecipients(f"{_shown(text)} is not an age recipient (age1...) or an SSH "
                            f"public key ({', '.join(_SSH_TYPES)})")


def _ssh_fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _shown(text: str, limit: int = 24) -> str:
    """A key quoted for a message, cut short: enough to recognise it."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


@dataclass(frozen=True)
class Recipients:
    """The public keys a target's snapshots are encrypted to; ``source`` says
    where they were configured (an environment variable), for messages."""

    keys: tuple[Any, ...]
    fingerprints: tuple[str, ...]
    source: str

    def encrypt(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """The age encryption of ``chunks``, streamed (bounded memory)."""
        import pyrage

        def transform(reader: Any, writer: Any) -> None:
            pyrage.encrypt_io(reader, writer, list(self.keys))

        return pull_through(transform, chunks, name="age-encrypt",
                            translate=lambda exc: CorruptSnapshot(f"age encryption failed: {exc}"))


def parse_recipients(value: str, *, source: str) -> Recipients:
    """Recipients from a setting: a comma-separated list of keys, or the path
    of a recipients file (one key per line, ``#`` comments, as ``age -R``
    reads). Raises :class:`InvalidRecipients` naming ``source``."""
    text = value.strip()
    try:
        if _looks_like_path(text):
            lines = _read_small(Path(text).expanduser(), what="recipients file").splitlines()
        else:
            lines = text.split(",")
        entries = [line.strip() for line in lines
                   if line.strip() and not line.strip().startswith("#")]
        if not entries:
            raise InvalidRecipients("no recipients in it")
        if len(entries) > MAX_RECIPIENTS:
            raise InvalidRecipients(f"{len(entries)} recipients; at most {MAX_RECIPIENTS}")
        keys = tuple(_recipient(entry) for entry in entries)
        prints = tuple(dict.fromkeys(fingerprint(entry) for entry in entries))
    except (InvalidRecipients, InvalidIdentity) as exc:
        raise InvalidRecipients(f"{source}: {exc}") from None
    return Recipients(keys=keys, fingerprints=prints, source=source)


def _looks_like_path(text: str) -> bool:
    """A recipients file: a path-like value, or a name that exists as a file
    (a bare word that is neither is reported as a recipient that does not parse)."""
    if text.startswith(("age1", *_SSH_TYPES)):
        return False
    return text.startswith(("/", "./", "../", "~")) or ("," not in text and Path(text).is_file())


def _read_small(path: Path, *, what: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise InvalidIdentity(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE:
        raise InvalidIdentity(f"{what} {path} is larger than {MAX_KEY_FILE // 1024} KiB; "
                              "it is not a key file")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidIdentity(f"{what} {path} is not text") from None


def _recipient(entry: str) -> Any:
    from pyrage import RecipientError, ssh, x25519

    try:
        if entry.startswith("age1"):
            return x25519.Recipient.from_str(entry)
        if entry.split()[0] in _SSH_TYPES:
            return ssh.Recipient.from_str(entry)
    except (RecipientError, ValueError) as exc:
        raise InvalidRecipients(f"recipient {_shown(entry)} does not parse: {exc}") from None
    fingerprint(entry)  # raises, naming what it is not
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Identities:
    """Secret keys that open snapshots, read from ``path``. ``fingerprints``
    are those of the recipients they open (an SSH identity's from the public
    key the OpenSSH file carries)."""

    keys: tuple[Any, ...]
    fingerprints: frozenset[str]
    path: str

    def check_opens(self, fingerprints: Collection[str], what: str) -> None:
        """Raise :class:`WrongIdentity` if none of these identities is one of the
        recipients ``what`` (a snapshot) was encrypted to."""
        # An SSH identity whose public half could not be read has no fingerprint:
        # whether it opens the snapshot is then for the decryption to say.
        if fingerprints and self.fingerprints and not self.fingerprints & set(fingerprints):
            raise WrongIdentity(f"identity {self.path} ({', '.join(sorted(self.fingerprints))}) "
                                f"does not open {what}, which is encrypted to "
                                f"{', '.join(fingerprints)}; pass one of their identities")

    def decrypt(self, chunks: Iterable[bytes], what: str) -> Iterator[bytes]:
        """The plaintext of the age stream ``chunks``, streamed. A damaged or
        cut-short stream raises :class:`CorruptSnapshot`; one not encrypted to
        these identities, :class:`WrongIdentity`."""
        import pyrage

        def transform(reader: Any, writer: Any) -> None:
            pyrage.decrypt_io(reader, writer, list(self.keys))

        def translate(exc: BaseException) -> BaseException:
            if "no matching keys" in str(exc).lower():
                return WrongIdentity(f"identity {self.path} does not open {what}")
            return CorruptSnapshot(f"{what} does not decrypt (damaged or truncated age "
                                   f"data: {exc})")

        return pull_through(transform, chunks, translate=translate, name="age-decrypt")


def load_identities(path: Path) -> Identities:
    """Read an age identity file (``AGE-SECRET-KEY-1...`` lines, ``#``
    comments, as ``age-keygen`` writes) or an unencrypted OpenSSH private key.
    Raises :class:`InvalidIdentity` saying what is wrong with it."""
    text = _read_small(path, what="identity file")
    if "-----BEGIN" in text and "PRIVATE KEY-----" in text and OPENSSH_BEGIN not in text:
        raise InvalidIdentity(f"identity file {path} is a PEM private key, which age cannot "
                              "use; convert it with ssh-keygen -p -f FILE (it rewrites the key "
                              "in the OpenSSH format) or use an age identity")
    if OPENSSH_BEGIN in text:
        return _ssh_identity(path, text)
    from pyrage import IdentityError, x25519

    keys, prints = [], set()
    for line in (line.strip() for line in text.splitlines()):
        if not line or line.startswith("#"):
            continue
        try:
            identity = x25519.Identity.from_str(line)
        except (IdentityError, ValueError):
            raise InvalidIdentity(f"identity file {path} holds a line that is not an age "
                                  "identity (AGE-SECRET-KEY-1...)") from None
        keys.append(identity)
        prints.add(fingerprint(str(identity.to_public())))
    if not keys:
        raise InvalidIdentity(f"identity file {path} holds no identity")
    return Identities(keys=tuple(keys), fingerprints=frozenset(prints), path=str(path))


def _ssh_identity(path: Path, text: str) -> Identities:
    from pyrage import IdentityError, ssh

    try:
        identity = ssh.Identity.from_buffer(text.encode())
    except (IdentityError, ValueError) as exc:
        raise InvalidIdentity(f"SSH identity {path} cannot be used ({exc}); it must be an "
                              "ed25519 or RSA key without a passphrase") from None
    blob = _openssh_public_blob(text)
    prints = frozenset({_ssh_fingerprint(blob)}) if blob else frozenset()
    return Identities(keys=(identity,), fingerprints=prints, path=str(path))


def _openssh_public_blob(text: str) -> bytes | None:
    """The public key an ``openssh-key-v1`` file carries in the clear, or None."""
    body = text.split(OPENSSH_BEGIN, 1)[1].split(_OPENSSH_END, 1)[0]
    try:
        raw = base64.b64decode("".join(body.split()))
        magic = b"openssh-key-v1\0"
        offset = len(magic) if raw.startswith(magic) else None
        if offset is None:
            return None
        for _ in range(3):  # ciphername, kdfname, kdfoptions
            (length,) = struct.unpack_from(">I", raw, offset)
            offset += 4 + length
        offset += 4  # number of keys
        (length,) = struct.unpack_from(">I", raw, offset)
        return raw[offset + 4: offset + 4 + length]
    except (ValueError, struct.error):
        return None


def require_identities(identities: Identities | None, fingerprints: Collection[str],
                       what: str) -> Identities:
    """``identities``, checked to open ``what``; :class:`IdentityRequired`
    naming the recipients' fingerprints when there are none."""
    if identities is None:
        listed = ", ".join(fingerprints) or "unrecorded recipients"
        raise IdentityRequired(f"{what} is encrypted (to {listed}); pass --identity FILE, or "
                               "set HOLDFAST_IDENTITY_FILE for the daemon")
    identities.check_opens(fingerprints, what)
    return identities


def new_identity(now: datetime | None = None) -> tuple[str, str]:
    """A fresh X25519 identity as ``age-keygen`` writes it, and its recipient."""
    from pyrage import x25519

    identity = x25519.Identity.generate()
    recipient = str(identity.to_public())
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n"
    return text, recipient


def readable(chunks: Iterable[bytes], *, encryption: str | None, recipients: Collection[str],
             identities: Identities | None, what: str) -> Iterator[bytes]:
    """The stored object's chunks as the compressed stream they hold: decrypted
    when ``encryption`` says so (needing ``identities``), as they are otherwise."""
    if encryption is None:
        return iter(chunks)
    if encryption != FORMAT:
        raise CorruptSnapshot(f"{what} is encrypted as {encryption!r}; this Holdfast reads "
                              f"{FORMAT}")
    return require_identities(identities, recipients, what).decrypt(chunks, what)


def encrypt_label_problem(wanted: bool | None, target: str, source: str | None) -> str | None:
    """What is wrong with ``holdfast.encrypt=<wanted>`` for a backup to
    ``target``, whose recipients come from ``source`` (None: it has none).
    Refusing both ways means a label can never silently store plaintext."""
    if wanted is False and source is not None:
        return (f"holdfast.encrypt=false: target {target} requires encryption ({source} is "
                "set); remove the label or back up to a target without recipients")
    if wanted is True and source is None:
        return (f"holdfast.encrypt=true: target {target} has no age recipients; set "
                f"HOLDFAST_TARGET_{target.upper()}_AGE_RECIPIENTS or HOLDFAST_AGE_RECIPIENTS")
    return None
