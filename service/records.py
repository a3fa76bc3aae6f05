"""What the catalog hands out: plain frozen records for instances, jobs and
notification deliveries.

Snapshots use :class:`backup.types.Snapshot` directly; instances and jobs only
exist in the service, so their records live here. None of them carries an ORM
object or a database session, so callers can keep them across threads and calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from backup.types import isoformat
from service.rates import eta_seconds, transfer_rate

ERROR_TYPE = "error_type"
"""The key of a failed job's ``result`` naming its error's class (the catalog
has no column for it); :meth:`JobRecord.to_json` shows it as ``error_type``."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # DELETE /v1/jobs/{id}; it cleaned up as a failure does
    INTERRUPTED = "interrupted"  # its host stopped heartbeating: its lease expired


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
    host: str | None = None
    """The host (:mod:`service.hosts`) whose engine it was last discovered on."""
    clash: str | None = None
    """Why its name clashes with a container of another host (None: it does not)."""
    clash_host: str | None = None
    """The host that found the clash, and clears it once it is gone."""


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
    # Progress (backup.phases.Phase values); bytes_total is a restore's
    # snapshot size, or for a backup the previous snapshot's stored size (an
    # estimate). transfer_started_at is when the bytes began to flow.
    phase: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    transfer_started_at: datetime | None = None
    progress_at: datetime | None = None
    # The client's Idempotency-Key and the sha256 of the request it came with:
    # never shown, the key only to say which one clashes.
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    # The fleet (service.fleet): the host whose daemon runs it, what it asks
    # for when another daemon queued it there (no secrets: names and options
    # only), and until when its host's heartbeats vouch for it.
    host: str | None = None
    request: dict[str, Any] | None = None
    lease_expires_at: datetime | None = None
    # When a daemon other than its host's was asked to cancel it (its host's
    # daemon then cancels it); only the catalog's request_cancel sets it.
    cancel_requested_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.finished_at is not None

    def rate(self) -> float | None:
        """Bytes per second while the data flowed; None before it did."""
        return transfer_rate(self.bytes_done, self.transfer_started_at, self.progress_at)

    def eta(self) -> float | None:
        """Seconds left while running, where the total is known (or estimated)."""
        if self.ended:
            return None
        return eta_seconds(self.bytes_done, self.bytes_total, self.rate())

    def to_json(self) -> dict[str, Any]:
        rate, eta = self.rate(), self.eta()
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
            # A failed job's result holds only its error's class (ERROR_TYPE).
            "error_type": (self.result or {}).get(ERROR_TYPE)
            if self.status == JobStatus.FAILED else None,
            "result": None if self.status == JobStatus.FAILED else self.result,
            "phase": self.phase,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "rate": None if rate is None else round(rate, 1),
            "eta_seconds": None if eta is None else round(eta, 1),
            "host": self.host,
        }


def is_unclaimed_request(job: JobRecord) -> bool:
    """Whether ``job`` is a request queued for its host by another daemon that
    its host has not claimed yet (it has no lease until then)."""
    return job.status == JobStatus.QUEUED and job.request is not None \
        and job.lease_expires_at is None


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    FAILED = "failed"
    DROPPED = "dropped"


@dataclass(frozen=True)
class Message:
    """What one destination is sent: ``payload`` is the webhook's JSON body,
    ``title`` and ``body`` the text chat services show."""

    event: str
    title: str
    body: str
    payload: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Delivery:
    """One message to one destination, as the catalog records it (no secrets:
    ``destination`` is a channel name or ``ping:<instance>``, never a URL)."""

    id: str
    destination: str
    message: Message
    status: DeliveryStatus
    created_at: datetime
    attempts: int = 0
    error: str | None = None
    finished_at: datetime | None = None

    @property
    def instance(self) -> str | None:
        """The instance the message is about (its payload's), if any."""
        value = self.message.payload.get("instance")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """As ``GET /v1/notifications`` shows it: the channel (or ``ping:<instance>``),
        never a URL; the message's event, instance and one-line reason."""
        reason = self.message.payload.get("reason")
        return {
            "id": self.id,
            "channel": self.destination,
            "event": self.message.event,
            "instance": self.instance,
            "reason": reason if isinstance(reason, str) else self.message.body,
            "status": str(self.status),
            "attempts": self.attempts,
            "error": self.error,
            "created_at": isoformat(self.created_at),
            "finished_at": isoformat(self.finished_at),
        }
