"""The project's own error tree.

Every failure a user can meet is one of these classes. Adapters translate vendor
errors (docker-py, botocore, SQLAlchemy, OS errors) into them at the edge, so the
CLI and the API map one tree to exit codes and HTTP statuses in one place. Each
message is a single line that says what went wrong and, where it can, what to do.
``retryable`` marks failures that may pass on a later attempt (restic's
``IsPermanentError`` turned around).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar


class HoldfastError(Exception):
    """Root of every error Holdfast raises on purpose."""

    retryable: ClassVar[bool] = False


# --- bad input ---------------------------------------------------------------


class InvalidInput(HoldfastError):
    """The request itself is wrong; nothing was changed."""


class InvalidLabels(InvalidInput):
    """A ``holdfast.*`` label does not parse."""


class InvalidName(InvalidInput):
    """A name (instance, container, volume, object key) is not acceptable."""


class NotFound(HoldfastError):
    """Something the request names does not exist."""


class InstanceNotFound(NotFound):
    pass


class SnapshotNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class NetworkNotFound(NotFound):
    """A Docker network a restore was asked to join does not exist."""


class CopyNotFound(NotFound):
    """No live copy (a container a restore created) of that name."""


class TokenNotFound(NotFound):
    """No API token of that name."""


class TargetNotFound(NotFound):
    """No storage target of that name is configured (a request naming one to check)."""


class Unauthorised(HoldfastError):
    """A request carries no token, or one that is not valid (unknown, expired,
    revoked): who is asking is not known, so nothing is allowed."""


class Forbidden(HoldfastError):
    """A valid token without the scope an operation needs; ``needed`` names it."""

    def __init__(self, message: str, needed: str = "") -> None:
        self.needed = needed
        super().__init__(message)


class Conflict(HoldfastError):
    """The request clashes with the current state (a name taken, a run in progress)."""


class NameTaken(Conflict):
    pass


class SnapshotNotRestorable(Conflict):
    """The snapshot exists but is not complete, so it cannot be restored."""


class AddressInUse(Conflict):
    """``holdfast serve`` cannot listen where it was told: something listens there."""


class PortTaken(Conflict):
    """A host port a restore was asked to publish is already bound."""


class DaemonAlreadyRunning(Conflict):
    """Another ``holdfast serve`` holds this data directory or catalog; ``holder``
    names it (host, pid, since when)."""

    ADVICE = "stop it first, or give this one its own HOLDFAST_DATA_DIR and HOLDFAST_DATABASE_URL"

    def __init__(self, what: str, holder: str, advice: str = ADVICE) -> None:
        self.what = what
        self.holder = holder
        super().__init__(f"another holdfast daemon is already running on {what} ({holder}); "
                         f"{advice}")


class Cancelled(HoldfastError):
    """The run was stopped on purpose: shutdown after the grace period, or a
    cancel request (``DELETE /v1/jobs/{id}``, :mod:`backup.cancel`)."""

    retryable = True


# --- the Docker side ----------------------------------------------------------


class Busy(HoldfastError):
    """The service is at one of its limits (open event streams); retry later."""

    retryable = True


class HostDown(HoldfastError):
    """The host an instance lives on has stopped heartbeating: its daemon cannot
    take work until it is back (``holdfast hosts`` shows it stale)."""

    retryable = True


class ContainerError(HoldfastError):
    """A container is not in a state the operation needs."""


class ContainerNotRunning(ContainerError):
    pass


class DockerUnavailable(HoldfastError):
    """The Docker engine cannot be reached."""

    retryable = True


class EventStreamEnded(DockerUnavailable):
    """The engine closed its event stream (it restarted, or the connection dropped)."""


class DockerRefused(HoldfastError):
    """The engine answered but refused the request (a 4xx, or a 5xx carrying the
    engine's reason, such as a start runc cannot carry out); retrying the same
    request will not help."""


class DockerRejectedInput(DockerRefused, InvalidInput):
    """The engine refused what the request carried (its 400, or a name longer
    than its file system allows): the input is what to fix, not the engine."""


class DockerBusy(Conflict):
    """The engine answered that it is already running an operation it runs one
    at a time (a disk-usage walk another client started); a later try may pass."""

    retryable = True


class ImageNotFound(NotFound):
    """An image the operation needs is not on the Docker engine."""


class ImagePullFailed(ImageNotFound):
    """An image is not on the engine and the engine could not pull it (no
    registry reachable, no such repository or tag, access refused).
    ``reason`` is the engine's own words, one line."""

    def __init__(self, image: str, reason: str, *, helper: bool = False) -> None:
        self.image = image
        self.reason = reason
        if helper:
            advice = ("load it with `docker load` or set HOLDFAST_HELPER_IMAGE to a local "
                      "image that has sh and GNU tar")
        else:
            advice = "pull or load it on the Docker host, or name another image"
        super().__init__(f"cannot pull {'helper ' if helper else ''}image {image}: "
                         f"{reason}; {advice}")


class ExecFailed(HoldfastError):
    """A command run inside a container exited non-zero or lost its stream."""

    def __init__(self, argv0: str, exit_code: int | None, stderr_tail: str) -> None:
        self.argv0 = argv0
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail
        super().__init__(self.describe(argv0))

    @property
    def outcome(self) -> str:
        """``exited N``, or ``lost its stream`` when the exit status is unknown."""
        return "lost its stream" if self.exit_code is None else f"exited {self.exit_code}"

    def describe(self, what: str) -> str:
        """One line: ``<what> exited N: <last meaningful stderr line>``."""
        detail = last_line(self.stderr_tail)
        return f"{what} {self.outcome}" + (f": {detail}" if detail else "")


# --- engines ------------------------------------------------------------------


class EngineError(HoldfastError):
    pass


class UnsupportedEngine(EngineError, InvalidInput):
    pass


class MissingCredentials(EngineError, InvalidInput):
    pass


class DumpFailed(EngineError):
    pass


class RestoreFailed(EngineError):
    pass


class NotReady(EngineError):
    """The database did not start accepting connections in time."""

    retryable = True


class CorruptSnapshot(EngineError):
    """The snapshot data does not match its manifest (checksum, size or framing)."""


# --- encryption ---------------------------------------------------------------


class EncryptionError(HoldfastError):
    """Root of the client-side encryption failures (:mod:`backup.encryption`)."""


class InvalidRecipients(EncryptionError, InvalidInput):
    """An age recipient (or recipients file) in the configuration does not parse."""


class InvalidIdentity(EncryptionError, InvalidInput):
    """An identity file cannot be read or holds no identity."""


class IdentityRequired(EncryptionError, InvalidInput):
    """The snapshot is encrypted and no identity was given to read it."""


class WrongIdentity(EncryptionError, InvalidInput):
    """The identity given is not one the snapshot was encrypted to."""


class KeyFileExists(EncryptionError, Conflict):
    """``holdfast keys generate`` never overwrites a file (it may be an identity)."""


# --- storage ------------------------------------------------------------------


class StorageError(HoldfastError):
    pass


class ObjectNotFound(StorageError, NotFound):
    pass


class ObjectExists(StorageError, Conflict):
    pass


class StorageUnavailable(StorageError):
    retryable = True


class StoragePermissionDenied(StorageError):
    pass


class DeliveryFailed(HoldfastError):
    """A notification channel or ping URL did not take a message; the message
    is one line and names no secret (no URL path, token or password)."""

    retryable = True


class StorageMisconfigured(StorageError, InvalidInput):
    pass


def last_line(text: str) -> str:
    """The line of a tool's stderr that best says why it failed: the last one
    naming an error (``error:``, ``FATAL``, ``ERROR:``), else the last line.
    Tools such as pg_dump end with context lines ("detail: Command was: …")
    that say where, not why."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_WORD.search(line):
            return line
    return lines[-1] if lines else ""


_ERROR_WORD = re.compile(r"\b(error|fatal|panic|denied|closed)\b", re.IGNORECASE)


class VolumeNotFound(NotFound):
    """No volume of that name on the Docker engine."""


class VolumeInUse(Conflict):
    """A container still uses the volume."""


class CloneFailed(HoldfastError):
    """Copying a volume failed after its target was emptied for ``--force``."""


def dump_stream(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
    """``chunks`` of a dump command, its :class:`ExecFailed` raised as
    :class:`DumpFailed` saying ``what`` failed."""
    try:
        yield from chunks
    except ExecFailed as exc:
        raise DumpFailed(exc.describe(what)) from exc


def quoted(text: str, limit: int = 80) -> str:
    """``text`` as Python quotes it (control characters escaped), cut to about
    ``limit`` characters: how a message shows a value a user sent, whatever it
    holds. Cut after quoting, since one character can quote as ten."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 3] + "..."
