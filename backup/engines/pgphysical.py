"""Physical Postgres snapshots (``holdfast.mode=physical``): the server's files.

A dump is ``pg_basebackup`` run inside the container, writing one tar of the
data directory to stdout with the WAL it needs to be consistent (``-X fetch``)
and a fast checkpoint, framed (:mod:`backup.framing`) after a ``meta.json``
that records the server's major version, its data directory and its databases.
A restore extracts the tar into the fresh volumes of a created, not yet started
container through a helper (:class:`~backup.ports.HelperContainers`), so the
server that then starts finds a cluster, skips initdb and only replays the WAL
from the backup's checkpoint: no SQL is loaded and no index is rebuilt, which is
why it is fast. It copies the whole server and only to the same major version.

Refused with a line saying what to do: a selection of databases, tablespaces
beyond the default ones (``pg_basebackup`` cannot write those to one stream), a
role or server without replication access, and an image of another major
version. Everything else (manifest, checksums, encryption, verification,
retention) is the same as for a logical snapshot.
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

from backup.engines.base import Dump
from backup.engines.postgres import PostgresEngine
from backup.engines.volume import TarEnd, archived_mounts, extract_into
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    RestoreFailed,
    dump_stream,
    last_line,
    quoted,
)
from backup.figures import Figures
from backup.framing import pack, unpack
from backup.ports import ContainerExec, HelperContainers
from backup.types import DatabaseContainer

PHYSICAL_FORMAT = "holdfast-postgres-physical-v1"
META_MEMBER = "meta.json"
TAR_MEMBER = "base.tar"
META_VERSION = 1
# pg_basebackup writes one tar to stdout only without extra tablespaces, and
# -X fetch puts the WAL from the backup's start to its end inside it.
_BASEBACKUP = ("pg_basebackup", "--pgdata=-", "--format=tar", "--wal-method=fetch",
               "--checkpoint=fast", "--no-password")
_PREFLIGHT = """
SELECT current_setting('server_version_num') || ' ' ||
       encode(convert_to(current_setting('data_directory'), 'UTF8'), 'hex') || ' ' ||
       (SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global'))
       || ' ' || (SELECT (rolreplication OR rolsuper)::int FROM pg_roles
                  WHERE rolname = current_user)
       || ' ' || current_setting('max_wal_senders')
"""
_TAR_EXTRACT = ("tar", "--extract", "--file=-", "--numeric-owner", "--same-owner",
                "--same-permissions")


class PostgresPhysicalEngine:
    """The reader of physical snapshots; a dump starts from
    :meth:`PostgresEngine.dump` when the container asks for the physical mode.
    Connection, readiness and measuring are the logical engine's."""

    name: ClassVar[str] = "postgres"
    data_format: ClassVar[str] = PHYSICAL_FORMAT
    read_formats: ClassVar[tuple[str, ...]] = (PHYSICAL_FORMAT,)
    loads_before_start: ClassVar[bool] = True
    service_port: ClassVar[int | None] = 5432

    def __init__(self) -> None:
        self._logical = PostgresEngine()

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return self._logical.connection_template(env, secret_names, host=host, port=port)

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return self._logical.data_paths(container)

    def check(self, container: DatabaseContainer) -> None:
        self._logical.check(container)

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        return self._logical.is_ready(container, runner)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        return self._logical.measure(container, runner, databases)

    # --- dump ---------------------------------------------------------------

    def dump(self, container: DatabaseContainer, runner: ContainerExec,
             databases: Sequence[str] = ()) -> Dump:
        """Copy the whole server of ``container``. Raises :class:`DumpFailed`
        before anything streams when the copy cannot work (see the module)."""
        self.check(container)
        if databases:
            raise DumpFailed(
                f"a physical snapshot of {container.name} copies the whole server; remove "
                "holdfast.databases, or set holdfast.mode=logical to pick databases")
        major, data_directory = self._preflight(container, runner)
        present = self._logical.list_databases(container, runner)
        meta = json.dumps({"version": META_VERSION, "server_major": major,
                           "data_directory": data_directory, "databases": present}).encode()
        env = self._logical.env_for(container)

        def members() -> Iterator[tuple[str, Iterable[bytes]]]:
            yield META_MEMBER, [meta]
            yield TAR_MEMBER, _whole_tar(dump_stream(
                runner.stream(container.id, list(_BASEBACKUP), env=env),
                f"pg_basebackup of {container.name}"), container)

        return Dump(databases=tuple(present), chunks=pack(members()),
                    data_format=PHYSICAL_FORMAT)

    def _preflight(self, container: DatabaseContainer, runner: ContainerExec) -> tuple[int, str]:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
             self._logical.maintenance_db(container), "-c", _PREFLIGHT],
            env=self._logical.env_for(container), check=False)
        if result.exit_code != 0:
            raise DumpFailed(f"cannot read the server settings of {container.name} for a "
                             f"physical snapshot: {last_line(result.stderr)}")
        fields = result.stdout.split()
        if len(fields) != 5 or not all(field.isalnum() for field in fields):
            answer = quoted(result.stdout.decode(errors="replace"))
            raise DumpFailed(f"cannot read the server settings of {container.name} for a "
                             f"physical snapshot: psql answered {answer}")
        version, hex_directory, tablespaces, replication, senders = fields
        user = self._logical.user(container)
        if int(tablespaces):
            raise DumpFailed(
                f"{container.name} has {int(tablespaces)} tablespace(s) besides the default "
                "ones, which a physical snapshot cannot stream; set holdfast.mode=logical")
        if not int(replication):
            raise DumpFailed(
                f"role {user} on {container.name} may not replicate, which a physical snapshot "
                f"needs; run ALTER ROLE {user} REPLICATION, or set holdfast.mode=logical")
        if not int(senders):
            raise DumpFailed(
                f"{container.name} runs with max_wal_senders=0, which a physical snapshot "
                "needs above 0; raise it, or set holdfast.mode=logical")
        return int(version) // 10000, bytes.fromhex(hex_directory.decode()).decode()

    # --- restore ------------------------------------------------------------

    def restore(self, container: DatabaseContainer, runner: ContainerExec,
                chunks: Iterable[bytes]) -> list[str]:
        """Extract the server's files into the data directory of ``container``
        (created, not started, with a fresh volume holding that directory),
        emptied first. Returns the databases the snapshot holds. Raises
        :class:`CorruptSnapshot` for a truncated or malformed archive and
        :class:`RestoreFailed` for an image of another major version or a
        container with no volume to hold the files."""
        helpers = _helpers(runner)
        if container.running:
            raise RestoreFailed(f"container {container.name} is running; a physical snapshot "
                                "restores only into a created container that has not started")
        members = unpack(chunks)
        first = next(members, None)
        if first is None or first.name != META_MEMBER:
            raise CorruptSnapshot("physical snapshot does not start with its metadata member")
        major, directory, databases = read_meta(first.read_small())
        check_image_major(container, major)
        check_mounted(container, directory)
        data = next(members, None)
        if data is None or data.name != TAR_MEMBER:
            raise CorruptSnapshot(f"physical snapshot has no {TAR_MEMBER} member")
        extract_into(helpers, container, extract_script(directory), data, members,
                     where=directory, what="the physical snapshot's tar")
        return databases


def extract_script(directory: str) -> str:
    """The shell run in the restore helper: empty the data directory (Docker
    copies the image's files into a new volume), extract, and give the
    directory the owner of its files and the mode Postgres insists on."""
    quoted_dir = shlex.quote(directory)
    return "\n".join([
        "set -eu",
        f"mkdir -p {quoted_dir}",
        f"find {quoted_dir} -mindepth 1 -maxdepth 1 -exec rm -rf -- {{}} +",
        shlex.join([*_TAR_EXTRACT, f"--directory={directory}"]),
        f'chown "$(stat -c %u:%g {quoted_dir}/PG_VERSION)" {quoted_dir}',
        f"chmod 0700 {quoted_dir}",
    ])


def read_meta(raw: bytes) -> tuple[int, str, list[str]]:
    """The major version, data directory and databases a snapshot records."""
    try:
        meta = json.loads(raw)
        version = meta["version"]
        major = int(meta["server_major"])
        directory = str(meta["data_directory"])
        databases = [str(name) for name in meta["databases"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptSnapshot(f"physical snapshot metadata does not parse: {exc}") from None
    if version != META_VERSION:
        raise CorruptSnapshot(f"physical snapshot metadata has version {version!r}; this "
                              f"Holdfast reads version {META_VERSION}")
    if not posixpath.isabs(directory) or ".." in directory.split("/"):
        raise CorruptSnapshot(f"physical snapshot names data directory {directory!r}")
    return major, directory, databases


def check_image_major(container: DatabaseContainer, major: int) -> None:
    """Refuse an image whose ``PG_MAJOR`` (the official image's variable) is
    another version: its server would refuse the files. An image that does not
    say is tried, and a mismatch shows in the server's own refusal to start."""
    given = container.env.get("PG_MAJOR", "").strip()
    if given.isdigit() and int(given) != major:
        raise RestoreFailed(
            f"the snapshot is a physical copy of Postgres {major} and image {container.image} "
            f"runs Postgres {given}; restore with --image of Postgres {major}, or move "
            "between major versions with a logical snapshot (holdfast.mode=logical)")


def check_mounted(container: DatabaseContainer, directory: str) -> None:
    """Refuse a container with no volume at or above the data directory: the
    files would land in its own layer."""
    for mount in archived_mounts(container.mounts):
        if directory == mount.destination or directory.startswith(
                mount.destination.rstrip("/") + "/"):
            return
    raise RestoreFailed(f"container {container.name} has no volume holding {directory}, "
                        "where the snapshot's files go")


def _whole_tar(chunks: Iterator[bytes], container: DatabaseContainer) -> Iterator[bytes]:
    end = TarEnd()
    yield from end.watch(chunks)
    if not end.complete():
        raise DumpFailed(f"pg_basebackup of {container.name} ended without the tar's "
                         "end-of-archive marker")


def _helpers(runner: ContainerExec) -> HelperContainers:
    if not isinstance(runner, HelperContainers):
        raise RestoreFailed("a physical Postgres restore needs helper containers (to write "
                            f"the volumes), and {type(runner).__name__} does not provide them")
    return runner
