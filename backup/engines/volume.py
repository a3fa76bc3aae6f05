"""The ``volume`` engine: a GNU tar of every named volume and bind mount of a
container, for applications that keep their state in plain files. Nothing runs
inside the user's container, whose image may have no tar at all: the archive
is made by a short-lived helper container (:class:`~backup.ports.HelperContainers`)
that mounts the container's volumes and binds at the same paths
(``--volumes-from``), read-only for a dump. The tar keeps numeric owners,
modes (setuid, sticky), symlinks, hardlinks, sparse files (holes found with
``SEEK_HOLE``, so a 200 MB file holding a few bytes costs a few blocks, and
extraction writes holes again), ACLs, and extended attributes (``user.*`` and
file capabilities are restored), with member paths relative to ``/``. The
snapshot is a :mod:`backup.framing` archive of ``meta.json`` (the mounts and
the tar's top-level members) and ``data.tar``, streamed from tar's stdout. A
restore runs in a created, not yet started container (``loads_before_start``):
one helper empties its fresh volumes (Docker copies image files into a new
volume, and they must not survive next to the snapshot's) and extracts the tar
into them. How a live archive is treated, and what
``holdfast.stop-during-backup`` changes, is stated on :meth:`VolumeEngine.dump`.
The tar streams through a reader (:mod:`backup.engines.tarscan`) that records
the tree's figures; :meth:`VolumeEngine.measure` runs the same tar on a copy.
"""

from __future__ import annotations

import json
import logging
import posixpath
import re
import shlex
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar

from backup.engines.base import Dump
from backup.engines.tarscan import TreeDigest, tar_reader
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    HoldfastError,
    InvalidInput,
    RestoreFailed,
    last_line,
)
from backup.figures import Figures, Scanner, scan
from backup.framing import Member, pack, unpack
from backup.labels import PREFIX, parse_bool
from backup.ports import ContainerExec, HelperContainers
from backup.types import DatabaseContainer, Mount

logger = logging.getLogger(__name__)

META_MEMBER = "meta.json"
TAR_MEMBER = "data.tar"
META_VERSION = 1
STOP_LABEL = PREFIX + "stop-during-backup"
STOP_TIMEOUT_S = 30.0
ARCHIVED_KINDS = ("volume", "bind")
_BLOCK = 512
# tar ends an archive with two zero blocks (then pads to its record size).
# GNU tar extracts a stream cut just before them without a complaint, so both
# the dump and the restore check for this marker themselves.
_END_MARKER = 2 * _BLOCK

_TAR_CREATE = (
    "tar", "--create", "--file=-", "--directory=/", "--format=posix", "--numeric-owner",
    "--sparse", "--acls", "--xattrs",
    # Name order makes the archive of one tree always the same, which is what
    # lets its figures (backup.engines.tarscan) be measured again and match.
    "--sort=name",
    # Access and change times would make two archives of unchanged data differ.
    "--pax-option=delete=atime,delete=ctime",
)
_TAR_EXTRACT = (
    "tar", "--extract", "--file=-", "--directory=/", "--numeric-owner", "--same-owner",
    "--same-permissions", "--acls", "--xattrs",
    # tar restores only user.* attributes unless told otherwise; file
    # capabilities are the other kind an application volume may carry.
    # trusted.* and security.selinux need privileges a helper does not have.
    "--xattrs-include=user.*", "--xattrs-include=security.capability",
)
# What GNU tar says when its input is not a whole, well-formed archive.
TAR_CORRUPT = re.compile(
    r"Unexpected EOF|does not look like a tar archive|Skipping to next header|"
    r"Not found in archive|damaged|malformed|invalid header|checksum error",
    re.IGNORECASE,
)
# The lines tar closes a failure with, which say nothing about its cause.
_TAR_SUMMARY = re.compile(r"Exiting with failure status|Error is not recoverable")


class VolumeEngine:
    name: ClassVar[str] = "volume"
    data_format: ClassVar[str] = "holdfast-volume-v1"
    read_formats: ClassVar[tuple[str, ...]] = (data_format,)
    loads_before_start: ClassVar[bool] = True
    service_port: ClassVar[int | None] = None

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return None  # files, no server to connect to

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [mount.destination for mount in archived_mounts(container.mounts)]

    def check(self, container: DatabaseContainer) -> None:
        """Raises :class:`InvalidInput` when the container has no named volume
        or bind mount (its files would live in the container's own layer,
        which a snapshot of volumes cannot carry), or a mount path tar could
        not name."""
        mounts = archived_mounts(container.mounts)
        if not mounts:
            raise InvalidInput(
                f"nothing to archive; container {container.name} has no named volume or bind "
                "mount (the volume engine backs up mounted data only)")
        for mount in mounts:
            member_name(mount.destination)

    @staticmethod
    def stop_during_backup(container: DatabaseContainer) -> bool:
        """The ``holdfast.stop-during-backup`` label; a value that does not
        parse is refused (discovery reports it first, so this is a backstop)."""
        raw = container.labels.get(STOP_LABEL, "false")
        value = parse_bool(raw)
        if value is None:
            raise InvalidInput(f"{STOP_LABEL}={raw!r} on {container.name}: use true or false")
        return value

    # --- dump ---------------------------------------------------------------

    def dump(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Dump:
        """Archive every volume and bind mount of ``container``.

        ``runner`` must also be a :class:`HelperContainers`. Nothing runs until
        the chunks are consumed: the first chunk stops the container (with
        the stop label, when it runs), the tar runs in a helper as chunks are
        pulled, and the container is started again when the stream ends,
        raises or is closed, and only if it was running before. The stream
        raises :class:`DumpFailed` when tar fails or its output is not a whole
        archive; a container that cannot be started again fails the dump too
        (its application is down, which matters more than the snapshot).

        Consistency: by default the archive is taken while the application
        runs, file by file, like ``cp -a`` of a live directory. GNU tar exits 1
        when a file changed, shrank or vanished while it was read; for a live
        archive that is what "live" means, so it is accepted and logged as a
        warning naming the files (such a file may be torn, and one that shrank
        is padded with zeros). Failing instead would make the scheduled
        backups of any busy application fail at random, which teaches
        operators to ignore failures and leaves them with no recent snapshot.
        Who needs a consistent snapshot sets ``holdfast.stop-during-backup=true``;
        then a tar exit 1 means something else writes the volumes, and the
        dump fails, as it cannot be the consistent copy asked for. Any other
        tar failure always fails the dump.
        """
        helpers = _helpers(runner, DumpFailed)
        if databases:
            raise DumpFailed(
                "a volume snapshot always covers every volume and bind mount of the "
                f"container; do not select databases (got {', '.join(databases)})")
        self.check(container)
        stop = self.stop_during_backup(container)
        mounts = archived_mounts(container.mounts)
        members = top_level([mount.destination for mount in mounts])
        meta = json.dumps({
            "version": META_VERSION,
            "mounts": [{"destination": m.destination, "kind": m.kind} for m in mounts],
            "members": members,
        }).encode()
        argv = ["sh", "-c", dump_script(members)]
        destinations = tuple(sorted(mount.destination for mount in mounts))
        tree = TreeDigest()
        scanner = Scanner(tar_reader(tree), f"the tar of {container.name}")
        return Dump(databases=destinations,
                    chunks=self._stream(container, helpers, argv, meta, stop, scanner),
                    figures=lambda: tree.figures() if scanner.done and not scanner.failed
                    else None)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        """The figures of the files in ``container``'s volumes (created or
        running), from the same tar a dump runs, in a read-only helper.
        Raises :class:`RestoreFailed` when the tar fails or does not parse."""
        helpers = _helpers(runner, RestoreFailed)
        members = top_level([mount.destination for mount in archived_mounts(container.mounts)])
        tree = TreeDigest()
        tar = helpers.helper_stream(["sh", "-c", dump_script(members)],
                                    volumes_from=container.id, read_only=True)
        try:
            whole = scan(tar_reader(tree), tar, f"the tar of {container.name}")
        except ExecFailed as exc:
            raise RestoreFailed(f"cannot measure the volumes of {container.name}: "
                                f"tar {exc.outcome}: {tar_complaint(exc.stderr_tail)}") from exc
        if not whole:
            raise RestoreFailed(f"cannot measure the volumes of {container.name}: its tar "
                                "does not parse")
        return tree.figures()

    def _stream(self, container: DatabaseContainer, helpers: HelperContainers,
                argv: list[str], meta: bytes, stop: bool, scanner: Scanner) -> Iterator[bytes]:
        tar = helpers.helper_stream(argv, volumes_from=container.id, read_only=True)
        stopped = False
        failure: BaseException | None = None
        try:
            if stop and container.running:
                # Flag first: a stop that fails half way must still get its start.
                stopped = True
                logger.info("stopping %s for its volume snapshot", container.name)
                try:
                    helpers.stop_container(container.id, timeout=STOP_TIMEOUT_S)
                except HoldfastError as exc:
                    raise DumpFailed(f"cannot stop {container.name} for its backup: {exc}") \
                        from exc
            yield from pack([(META_MEMBER, [meta]),
                             (TAR_MEMBER, scanner.watch(
                                 _checked_tar(tar, container, consistent=stop)))])
        except BaseException as exc:
            failure = exc
            raise
        finally:
            try:
                # The helper goes first, so tar never reads while the app writes again.
                close = getattr(tar, "close", None)  # a generator; the protocol says Iterator
                if close is not None:
                    close()
            finally:
                if stopped:
                    _start_again(container, helpers, failure)

    # --- readiness ----------------------------------------------------------

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        """A plain application has no protocol to probe: it is ready once it
        runs (the restore runner already fails a container that exited)."""
        return container.running

    # --- restore ------------------------------------------------------------

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        """Put the archived files back into the fresh volumes of ``container``,
        which must be created and not started, with a volume or bind mount at
        every archived destination. Existing content of those mounts is
        deleted first: the restore runner creates them fresh, and what they
        hold is what Docker copied in from the image. Returns the
        destinations restored. Raises :class:`CorruptSnapshot` for a
        truncated or malformed archive, :class:`RestoreFailed` otherwise."""
        helpers = _helpers(runner, RestoreFailed)
        if container.running:
            raise RestoreFailed(
                f"container {container.name} is running; the volume engine restores only into "
                "a created container that has not started (its app would see half the files)")
        members = unpack(chunks)
        first = next(members, None)
        if first is None or first.name != META_MEMBER:
            raise CorruptSnapshot("volume snapshot does not start with its metadata member")
        destinations, archived = _read_meta(first.read_small())
        present = {mount.destination for mount in archived_mounts(container.mounts)}
        missing = [destination for destination in destinations if destination not in present]
        if missing:
            raise RestoreFailed(
                f"container {container.name} has no volume at {', '.join(missing)}; the "
                "snapshot's files would land in the container's own layer and be lost")
        data = next(members, None)
        if data is None or data.name != TAR_MEMBER:
            raise CorruptSnapshot("volume snapshot has no data.tar member")
        extract_into(helpers, container, restore_script(destinations, archived), data, members,
                     where="the volumes", what="the snapshot's tar")
        return destinations


def extract_into(helpers: HelperContainers, container: DatabaseContainer, script: str,
                 tar: Iterable[bytes], rest: Iterator[Member], *, where: str, what: str) -> None:
    """Run ``script`` in a helper mounting the volumes of ``container``, with
    the ``tar`` member on its stdin, then read the archive to its end. Raises
    :class:`CorruptSnapshot` when tar finds the archive malformed, it lacks its
    end marker, or the frames after it are cut (``rest``: the members left),
    and :class:`RestoreFailed` for any other failure of the extraction
    (``where`` it writes and ``what`` it reads say which in the message)."""
    tracked = TarEnd()
    stream = tracked.watch(iter(tar))
    try:
        result = helpers.helper_run(["sh", "-c", script], volumes_from=container.id,
                                    read_only=False, stdin=stream, check=False)
    except ExecFailed as exc:
        raise RestoreFailed(f"extracting into {where} of {container.name} failed: {exc}") from exc
    if result.exit_code != 0:
        reason = tar_complaint(result.stderr) or f"exit status {result.exit_code}"
        if TAR_CORRUPT.search(result.stderr):
            raise CorruptSnapshot(f"{what} does not extract: {reason}")
        raise RestoreFailed(f"extracting into {where} of {container.name} failed: {reason}")
    # tar stops reading at its end marker; the rest is record padding, and
    # reading it is what proves the frame (and the tar) arrived whole.
    for _ in stream:
        pass
    if not tracked.complete():
        raise CorruptSnapshot(f"{what} ends without its end-of-archive marker (truncated data)")
    for extra in rest:  # reaches the end record: a truncated archive raises
        extra.skip()


# --- pure helpers -------------------------------------------------------------


def archived_mounts(mounts: Iterable[Mount]) -> list[Mount]:
    """The mounts a snapshot covers (volumes, named or anonymous, and binds;
    not tmpfs), sorted by destination."""
    return sorted((m for m in mounts if m.kind in ARCHIVED_KINDS), key=lambda m: m.destination)


def member_name(destination: str) -> str:
    """``/var/lib/app`` -> ``var/lib/app``, the tar member of a mount.
    Raises :class:`InvalidInput` for a path tar would rewrite or misread."""
    normal = posixpath.normpath(destination)
    if (not destination.startswith("/") or normal != destination or normal == "/"
            or "\n" in destination):
        raise InvalidInput(f"mount destination {destination!r} is not a plain absolute path")
    return normal.lstrip("/")


def _nested_in(path: str, parent: str) -> bool:
    return path.startswith(parent.rstrip("/") + "/")


def top_level(destinations: Iterable[str]) -> list[str]:
    """Tar members for ``destinations``: a mount nested in another one (``/app``
    and ``/app/uploads``) is reached through its parent, so naming it again
    would archive it twice."""
    paths = sorted(set(destinations))
    return [member_name(path) for path in paths
            if not any(_nested_in(path, other) for other in paths if other != path)]


def _glob_escape(path: str) -> str:
    # find -path matches with fnmatch, where these characters are special.
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def empty_command(destination: str, destinations: Sequence[str]) -> str:
    """A ``find`` that deletes everything inside ``destination`` except other
    mounts nested in it, their contents, and the directories leading to them
    (a mount point cannot be removed, so neither can its parents)."""
    keep: set[str] = set()
    for other in destinations:
        if _nested_in(other, destination):
            keep.add(_glob_escape(other))
            keep.add(_glob_escape(other) + "/*")
            parent = posixpath.dirname(other)
            while _nested_in(parent, destination):
                keep.add(_glob_escape(parent))
                parent = posixpath.dirname(parent)
    argv = ["find", destination, "-mindepth", "1"]
    if keep:
        argv.append("(")
        for index, pattern in enumerate(sorted(keep)):
            argv += (["-o"] if index else []) + ["-path", pattern]
        argv += [")", "-o"]
    argv.append("-delete")
    return shlex.join(argv)


def dump_script(members: Sequence[str]) -> str:
    """The shell run in the dump helper: refuse a mount that is a single file
    (a restore mounts a fresh volume, a directory, at every destination, so a
    file could not be put back), then stream the tar of ``members``."""
    names = " ".join(shlex.quote(name) for name in members)
    refusal = shlex.quote("is a file mount; the volume engine archives directories only")
    return "\n".join([
        "set -eu",
        f'for d in {names}; do [ -d "/$d" ] || {{ echo "holdfast: /$d" {refusal} >&2; exit 2; }}; '
        "done",
        "exec " + shlex.join([*_TAR_CREATE, "--", *members]),
    ])


def restore_script(destinations: Sequence[str], archived: Sequence[str]) -> str:
    """The shell run in the restore helper: check every destination is a
    mounted directory, empty each, then extract only the archived members
    (anything else in the archive is ignored, and a member missing from it is
    an error) with owners, modes, ACLs and attributes."""
    lines = ["set -eu"]
    for destination in destinations:
        complaint = shlex.quote(f"holdfast: {destination} is not a mounted directory in the "
                                "restore helper")
        lines.append(f"[ -d {shlex.quote(destination)} ] || {{ echo {complaint} >&2; exit 3; }}")
    lines += [empty_command(destination, destinations) for destination in destinations]
    lines.append("exec " + shlex.join([*_TAR_EXTRACT, "--", *archived]))
    return "\n".join(lines)


def tar_complaint(stderr: str) -> str:
    """The line of tar's stderr that says what went wrong: tar ends a failure
    with "Exiting with failure status due to previous errors", which says
    nothing, so the last line before such summaries is taken."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    telling = [line for line in lines if not _TAR_SUMMARY.search(line)]
    return telling[-1] if telling else last_line(stderr)


def _read_meta(raw: bytes) -> tuple[list[str], list[str]]:
    try:
        meta = json.loads(raw)
        version = meta["version"]
        destinations = [str(mount["destination"]) for mount in meta["mounts"]]
        archived = [str(name) for name in meta["members"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSnapshot(f"volume snapshot metadata does not parse: {exc}") from None
    if version != META_VERSION:
        raise CorruptSnapshot(f"volume snapshot metadata has version {version!r}; this "
                              f"Holdfast reads version {META_VERSION}")
    try:
        expected = top_level(destinations)
    except InvalidInput as exc:
        raise CorruptSnapshot(f"volume snapshot metadata: {exc}") from None
    if not destinations or sorted(archived) != sorted(expected):
        raise CorruptSnapshot("volume snapshot metadata lists members that do not match "
                              "its mounts")
    return destinations, archived


class TarEnd:
    """Watches a tar stream go by and tells whether it ended like a whole
    archive: a whole number of blocks, the last two of them zero."""

    def __init__(self) -> None:
        self.size = 0
        self._tail = b""

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            self._tail = (self._tail + chunk)[-_END_MARKER:]
            yield chunk

    def complete(self) -> bool:
        return (self.size >= _END_MARKER and self.size % _BLOCK == 0
                and self._tail == bytes(_END_MARKER))


def _helpers(runner: Any, error: type[HoldfastError]) -> HelperContainers:
    if not isinstance(runner, HelperContainers):
        raise error(
            "the volume engine needs helper containers (to mount the volumes next to the "
            f"container), and {type(runner).__name__} does not provide them")
    return runner


def _checked_tar(chunks: Iterator[bytes], container: DatabaseContainer, *,
                 consistent: bool) -> Iterator[bytes]:
    """Pass tar's output through; translate its failures into :class:`DumpFailed`
    and apply the exit-status-1 policy of the module docstring."""
    end = TarEnd()
    try:
        yield from end.watch(chunks)
    except ExecFailed as exc:
        detail = tar_complaint(exc.stderr_tail)
        if exc.exit_code == 1 and not consistent:
            changed = [line.strip() for line in exc.stderr_tail.splitlines() if line.strip()]
            logger.warning(
                "volume snapshot of %s is a live copy: files changed while tar read them "
                "(set %s=true for a consistent one): %s",
                container.name, STOP_LABEL, "; ".join(changed[-10:]) or "no detail")
        else:
            hint = (" although the container was stopped; something else writes its volumes"
                    if exc.exit_code == 1 else "")
            raise DumpFailed(f"tar of the volumes of {container.name} {exc.outcome}{hint}"
                             + (f": {detail}" if detail else "")) from exc
    if not end.complete():
        raise DumpFailed(f"tar of the volumes of {container.name} ended without its "
                         "end-of-archive marker")


def _start_again(container: DatabaseContainer, helpers: HelperContainers,
                 failure: BaseException | None) -> None:
    """Start the container stopped for the backup. If that fails the
    application is down, which matters more than the snapshot: the dump fails
    with that reason, or, when it already failed, the reason is logged."""
    try:
        helpers.start(container.id)
    except HoldfastError as exc:
        message = (f"could not start {container.name} again after its volume snapshot: {exc}; "
                   "start it by hand")
        logger.error(message)
        if failure is None or isinstance(failure, GeneratorExit):
            raise DumpFailed(message) from exc
    else:
        logger.info("started %s again after its volume snapshot", container.name)
