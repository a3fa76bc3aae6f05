"""Plain data shared by the domain: containers as engines see them, snapshots, manifests.

These are frozen dataclasses with no behaviour beyond (de)serialisation, so the
catalog, the storage layout and the API can all be derived from them without any
of those layers leaking into the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

MANIFEST_VERSION = 1

# Names of environment variables whose values are secrets. Their values are used
# in memory (to connect, to recreate a container) but never stored or printed.
_SECRET_ENV = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|_KEY$|^KEY$|CREDENTIAL|PRIVATE)", re.I)


def is_secret_env_name(name: str) -> bool:
    return bool(_SECRET_ENV.search(name))


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Mount:
    """One mount of a container: where it appears and what backs it."""

    destination: str
    kind: str  # "volume", "bind" or "tmpfs"
    source: str = ""  # volume name or host path


@dataclass(frozen=True)
class DatabaseContainer:
    """A running container as the engines see it.

    ``env`` holds the container's whole environment, secrets included; it lives in
    memory only. Anything persisted goes through :func:`public_env`.
    """

    id: str
    name: str
    image: str
    image_id: str
    env: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    networks: tuple[str, ...] = ()
    running: bool = True
    image_env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    """The container's command (``Config.Cmd``); may hold secrets, memory only."""


# Command-line flags whose value is a secret, and the variable a restore reads
# it from when the source container is gone (Redis users pass --requirepass).
SECRET_FLAGS: Mapping[str, str] = {
    "--requirepass": "REDIS_PASSWORD",
    "--masterauth": "REDIS_MASTERAUTH",
}
_SECRET_MARK = re.compile(r"\{\{secret:([A-Z0-9_]+)\}\}")


def _placeholder(name: str) -> str:
    return "{{secret:" + name + "}}"


def redact_command(command: Sequence[str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """``command`` with the value of every secret flag replaced by a
    ``{{secret:NAME}}`` placeholder, and the values taken out by name; the
    redacted command can be stored, the values cannot."""
    public: list[str] = []
    values: dict[str, str] = {}
    pending: str | None = None
    for arg in command:
        if pending is not None:
            values[pending] = arg
            public.append(_placeholder(pending))
            pending = None
            continue
        flag, sep, value = arg.partition("=")
        if flag in SECRET_FLAGS:
            if sep:
                values[SECRET_FLAGS[flag]] = value
                public.append(f"{flag}={_placeholder(SECRET_FLAGS[flag])}")
                continue
            pending = SECRET_FLAGS[flag]
        public.append(arg)
    return tuple(public), values


def fill_command(public: Sequence[str], values: Mapping[str, str]) -> tuple[str, ...]:
    """The inverse of :func:`redact_command`, given the secret values."""
    filled: list[str] = []
    for arg in public:
        flag, sep, value = arg.partition("=")
        match = _SECRET_MARK.fullmatch(value if sep else arg)
        if match is None:
            filled.append(arg)
        elif sep:
            filled.append(f"{flag}={values[match.group(1)]}")
        else:
            filled.append(values[match.group(1)])
    return tuple(filled)


def public_env(env: Mapping[str, str], image_env: Mapping[str, str]) -> dict[str, str]:
    """The container's own (non-image) environment with secret values left out."""
    return {
        key: value
        for key, value in sorted(env.items())
        if image_env.get(key) != value and not is_secret_env_name(key)
    }


def secret_env_names(env: Mapping[str, str]) -> list[str]:
    return sorted(key for key in env if is_secret_env_name(key))


class SnapshotStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"


@dataclass(frozen=True)
class Snapshot:
    """One snapshot as the catalog records it (no secrets, ever)."""

    id: str
    instance: str
    engine: str
    target: str
    status: SnapshotStatus
    created_at: datetime
    data_key: str
    finished_at: datetime | None = None
    size_bytes: int | None = None
    raw_bytes: int | None = None
    sha256: str | None = None
    image: str = ""
    image_id: str = ""
    error: str | None = None
    pinned: bool = False
    runner: str | None = None
    """Which process writes a running snapshot (``host:pid:start``); not shown to users."""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    """User tags (``{"release": "v1.4.2"}``, :mod:`backup.tags`), also in the manifest."""
    encryption: str | None = None
    """``age-v1`` when the data object is encrypted, as its manifest says."""
    recipients: tuple[str, ...] = ()
    """Fingerprints of the recipients it is encrypted to (never a key)."""
    verified_at: datetime | None = None
    """When a verified restore of it last ended (passed or failed)."""
    verification: Mapping[str, Any] | None = field(default=None, hash=False)
    """That verified restore's outcome: ``result`` (``passed``/``failed``),
    ``reason``, the figures compared (:mod:`service.usecases.verification`)."""

    def with_changes(self, **changes: Any) -> Snapshot:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance": self.instance,
            "engine": self.engine,
            "target": self.target,
            "status": str(self.status),
            "size_bytes": self.size_bytes,
            "raw_bytes": self.raw_bytes,
            "sha256": self.sha256,
            "created_at": isoformat(self.created_at),
            "finished_at": isoformat(self.finished_at),
            "image": self.image,
            "image_id": self.image_id,
            "data_key": self.data_key,
            "error": self.error,
            "pinned": self.pinned,
            "tags": dict(self.tags),
            "encryption": self.encryption,
            "recipients": list(self.recipients),
            "verified_at": isoformat(self.verified_at),
            "verification": dict(self.verification) if self.verification else None,
        }


@dataclass(frozen=True)
class Manifest:
    """The small JSON document stored beside each data object.

    It carries everything needed to restore the snapshot and to rebuild the
    catalog from storage alone. It is written only after the data object is
    complete, so its presence marks a complete snapshot.
    """

    snapshot_id: str
    instance: str
    engine: str
    data_key: str
    data_format: str
    compression: str
    image: str
    image_id: str
    created_at: datetime
    finished_at: datetime
    size_bytes: int
    raw_bytes: int
    sha256: str
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    networks: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    source_container: str = ""
    command: tuple[str, ...] = ()
    """The source's command with secret values replaced (:func:`redact_command`)."""
    secret_args: tuple[str, ...] = ()
    """Names of the secrets ``command`` refers to."""
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)
    """The snapshot's user tags; a manifest written before tags existed has none."""
    pinned: bool = False
    """Whether retention keeps the snapshot whatever its policy; pin and unpin
    rewrite the manifest (:meth:`backup.storage.Storage.replace`)."""
    encryption: str | None = None
    """``age-v1`` when the data object is age-encrypted (:mod:`backup.encryption`)."""
    recipients: tuple[str, ...] = ()
    """Fingerprints of the recipients it is encrypted to; never a key."""
    figures: Mapping[str, Any] | None = field(default=None, hash=False)
    """What the dump held (:meth:`backup.figures.Figures.to_json`), gathered as
    it streamed; None for an engine that gathers none and in older manifests."""
    version: int = MANIFEST_VERSION

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["created_at"] = isoformat(self.created_at)
        data["finished_at"] = isoformat(self.finished_at)
        data["env"] = dict(self.env)
        data["tags"] = dict(self.tags)
        data["figures"] = dict(self.figures) if self.figures is not None else None
        return data

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), indent=2, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_bytes(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        created = parse_iso(data["created_at"])
        finished = parse_iso(data["finished_at"])
        assert created is not None and finished is not None
        return cls(
            snapshot_id=data["snapshot_id"],
            instance=data["instance"],
            engine=data["engine"],
            data_key=data["data_key"],
            data_format=data["data_format"],
            compression=data["compression"],
            image=data["image"],
            image_id=data["image_id"],
            created_at=created,
            finished_at=finished,
            size_bytes=int(data["size_bytes"]),
            raw_bytes=int(data["raw_bytes"]),
            sha256=data["sha256"],
            env=dict(data.get("env", {})),
            secret_env=tuple(data.get("secret_env", ())),
            mounts=tuple(Mount(**m) for m in data.get("mounts", ())),
            networks=tuple(data.get("networks", ())),
            databases=tuple(data.get("databases", ())),
            source_container=data.get("source_container", ""),
            command=tuple(data.get("command", ())),
            secret_args=tuple(data.get("secret_args", ())),
            tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
            pinned=bool(data.get("pinned", False)),
            encryption=data.get("encryption") or None,
            recipients=tuple(str(r) for r in data.get("recipients") or ()),
            figures=data.get("figures") or None,
            version=int(data.get("version", MANIFEST_VERSION)),
        )
