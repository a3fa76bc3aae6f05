"""What the catalog hands out: plain frozen records for instances and jobs.

Snapshots use :class:`backup.types.Snapshot` directly; instances and jobs only
exist in the service, so their records live here. None of them carries an ORM
object or a database session, so callers can keep them across threads and calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from backup.types import isoformat


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class InstanceRecord:
    """A discovered database instance, keyed by its stable name, not its container id."""

    name: str
    engine: str | None
    container_id: str | None
    container_name: str | None
    image: str | None
    labels: dict[str, str]  # only holdfast.* labels
    error: str | None
    first_seen: datetime
    last_seen: datetime
    policy_override: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobRecord:
    """One asynchronous backup or restore requested through the API."""

    id: str
    kind: str  # "backup", "restore" or "clone"
    status: JobStatus
    created_at: datetime
    instance: str | None = None
    snapshot_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "status": str(self.status),
            "instance": self.instance,
            "snapshot_id": self.snapshot_id,
            "created_at": isoformat(self.created_at),
            "started_at": isoformat(self.started_at),
            "finished_at": isoformat(self.finished_at),
            "error": self.error,
            "result": self.result,
        }
