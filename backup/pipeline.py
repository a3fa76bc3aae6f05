"""Taking a snapshot: dump -> count -> zstd -> [age] -> sha256 -> storage, in one pass.

The data object is committed by the storage target only after the dump stream
ends cleanly; a dump that exits non-zero raises inside the stream, so the
target discards its partial write. The manifest is written only after the data
object exists, so a manifest always describes a complete object. If writing the
manifest fails, the data object is deleted again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime

from backup.encryption import FORMAT as ENCRYPTION_FORMAT
from backup.encryption import SUFFIX, Recipients
from backup.engines.base import Engine
from backup.errors import HoldfastError, InvalidName, ObjectNotFound
from backup.labels import NAME_PATTERN
from backup.phases import Phase, PhaseCallback, no_phases
from backup.ports import ContainerExec
from backup.storage.base import Storage
from backup.streams import Meter, ProgressCallback, compress, interruptible
from backup.types import (
    DatabaseContainer,
    Manifest,
    public_env,
    redact_command,
    secret_env_names,
    utcnow,
)

logger = logging.getLogger(__name__)

COMPRESSION = "zstd"
DATA_NAME = "data.hfa.zst"
MANIFEST_NAME = "manifest.json"


def new_snapshot_id(moment: datetime) -> str:
    """Sortable by time, unique, and short enough to type: ``20261129T215230Z-3f9a1c``."""
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def data_key(instance: str, snapshot_id: str, *, encrypted: bool = False) -> str:
    """Where a snapshot's data object lives; an encrypted one ends in ``.age``."""
    if not NAME_PATTERN.fullmatch(instance):
        raise InvalidName(f"instance name {instance!r} cannot be used as a storage key")
    return f"{instance}/{snapshot_id}/{DATA_NAME}{SUFFIX if encrypted else ''}"


def data_keys(instance: str, snapshot_id: str) -> list[str]:
    """Every name the snapshot's data object may have (plain and encrypted)."""
    return [data_key(instance, snapshot_id), data_key(instance, snapshot_id, encrypted=True)]


def manifest_key(instance: str, snapshot_id: str) -> str:
    return f"{instance}/{snapshot_id}/{MANIFEST_NAME}"


def data_object_problem(stored_size: int | None, expected_size: int | None) -> str | None:
    """What is wrong with a snapshot's data object, given the size the target
    stores (None: not there) and the size its record expects; None if nothing."""
    if stored_size is None:
        return "missing"
    if stored_size != expected_size:
        return f"{stored_size} bytes, not {expected_size}"
    return None


def is_manifest_key(key: str) -> bool:
    return key.endswith("/" + MANIFEST_NAME)


def take_snapshot(
    *,
    snapshot_id: str,
    instance: str,
    created_at: datetime,
    container: DatabaseContainer,
    engine: Engine,
    runner: ContainerExec,
    storage: Storage,
    databases: Sequence[str] = (),
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    tags: Mapping[str, str] | None = None,
    pinned: bool = False,
    phase: PhaseCallback = no_phases,
    recipients: Recipients | None = None,
) -> Manifest:
    """Dump ``container`` to ``storage`` and return the manifest written beside it
    (carrying ``tags`` and ``pinned``, so a catalog rebuild keeps them). With
    ``recipients`` the compressed stream is age-encrypted to them before it is
    stored; the sha256 and size are then of the encrypted object.

    Raises :class:`DumpFailed` (nothing stored) or a storage error. ``progress``
    sees the compressed bytes as they are written; ``phase`` hears ``dumping``
    as the dump starts and ``uploading`` once it has ended (the target then
    commits the object and the manifest is written).
    """
    phase(Phase.DUMPING)
    dump = engine.dump(container, runner, databases)
    raw = Meter()
    stored = Meter(progress)
    key = data_key(instance, snapshot_id, encrypted=recipients is not None)
    chunks = compress(interruptible(raw.measure(dump.chunks), cancelled))
    if recipients is not None:
        chunks = recipients.encrypt(chunks)
    info = storage.put(key, _then(stored.measure(chunks), lambda: phase(Phase.UPLOADING)))
    figures = dump.figures()  # valid now: the stream has ended
    command, command_secrets = redact_command(container.command)
    manifest = Manifest(
        snapshot_id=snapshot_id,
        instance=instance,
        engine=engine.name,
        data_key=key,
        data_format=dump.data_format or engine.data_format,
        compression=COMPRESSION,
        image=container.image,
        image_id=container.image_id,
        created_at=created_at,
        finished_at=utcnow(),
        size_bytes=info.size,
        raw_bytes=raw.size,
        sha256=stored.sha256,
        env=public_env(container.env, container.image_env),
        secret_env=tuple(secret_env_names(container.env)),
        mounts=container.mounts,
        networks=container.networks,
        databases=dump.databases,
        source_container=container.name,
        command=command,
        secret_args=tuple(sorted(command_secrets)),
        tags=dict(tags or {}),
        pinned=pinned,
        encryption=ENCRYPTION_FORMAT if recipients is not None else None,
        recipients=recipients.fingerprints if recipients is not None else (),
        figures=figures.to_json() if figures is not None else None,
    )
    try:
        storage.put(manifest_key(instance, snapshot_id), [manifest.to_bytes()])
    except BaseException:
        _delete_quietly(storage, key)
        raise
    return manifest


def _then(chunks: Iterable[bytes], ended: Callable[[], None]) -> Iterator[bytes]:
    """Pass ``chunks`` through, then call ``ended`` once they are exhausted."""
    yield from chunks
    ended()


def delete_snapshot_objects(storage: Storage, snapshots: Iterable[tuple[str, str]]) -> None:
    """Remove ``(instance, snapshot_id)`` snapshots from storage in two batches:
    every data object first, then every manifest. A crash half way thus leaves
    manifests whose snapshot is still listed and can be pruned again (start-up
    recovery marks those whose data is gone as failed), never data objects that
    nothing refers to. Missing objects are not an error; storage errors raise."""
    pairs = list(snapshots)
    storage.delete_many([key for instance, snapshot_id in pairs
                         for key in data_keys(instance, snapshot_id)])
    storage.delete_many([manifest_key(instance, snapshot_id) for instance, snapshot_id in pairs])


def _delete_quietly(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except ObjectNotFound:
        pass
    except HoldfastError as exc:
        logger.error("could not delete %s from target %s: %s", key, storage.name, exc)
