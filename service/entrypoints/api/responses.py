"""The HTTP API's response bodies as pydantic models: the OpenAPI document's contract.

Each model mirrors, field for field, the JSON a use case's record gives with
``to_json()`` (the shape the CLI prints with ``--json``): routes keep returning
those dicts and FastAPI checks them against ``response_model``, so a model that
dropped or renamed a field would change what clients get, which
tests/usecases/entrypoints/test_response_models.py rules out. Times are ISO 8601
strings in UTC (``...Z``), typed ``format: date-time``; free-form maps (tags,
labels, readiness checks) are string-to-string. Every model carries an example,
consistent with the README's. Job results are typed per kind (backup, restore,
clone, verify, verify-target): their required fields are disjoint, so a result
fits exactly one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backup.phases import Phase
from backup.types import SnapshotStatus
from service.entrypoints.api.copy_responses import CloneResult, WarmResult
from service.entrypoints.api.integrity_responses import VerifyResult, VerifyTargetResult
from service.records import JobStatus

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"},
                                 examples=["2026-12-03T05:00:04Z"])]
"""An ISO 8601 time in UTC, as :func:`backup.types.isoformat` writes it."""

SNAPSHOT_ID = "20261203T050000Z-prod-db-3f9a"
JOB_ID = "job_0b6c2f8e4d1a"
CONTAINER_ID = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"


def _example(example: dict[str, Any]) -> ConfigDict:
    """A model's ``model_config`` carrying ``example`` in its JSON schema."""
    return ConfigDict(json_schema_extra={"examples": [example]})


# --- snapshots ---------------------------------------------------------------------------

_SNAPSHOT_EXAMPLE: dict[str, Any] = {
    "id": SNAPSHOT_ID, "instance": "prod-db", "engine": "postgres", "target": "local",
    "status": "complete", "size_bytes": 1843, "raw_bytes": 5120,
    "sha256": "9f2c5e0b7d1a4c3e8b6f0a2d4c6e8a0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c",
    "created_at": "2026-12-03T05:00:00Z", "finished_at": "2026-12-03T05:00:04Z",
    "image": "postgres:15", "image_id": "sha256:1a2b3c4d5e6f",
    "data_key": "prod-db/20261203T050000Z-prod-db-3f9a.dump.zst", "error": None,
    "pinned": True, "tags": {"release": "v1.4.2"},
    "encryption": "age-v1", "recipients": ["age:4e5102c425db2503"],
    "verified_at": None, "verification": None,
}


class FigureDifference(BaseModel):
    """One figure a verified restore found different from its backup's record."""

    model_config = _example({"name": "shop.public.orders", "recorded": 1200, "measured": 1199})

    name: str = Field(description="what was compared: db.schema.table, role:NAME, db0, "
                      "files, bytes or tree_sha256")
    recorded: int | str | None = Field(description="at backup time (null: not recorded)")
    measured: int | str | None = Field(description="on the restored copy (null: absent)")


class Verification(BaseModel):
    """The outcome of a snapshot's last verified restore."""

    model_config = _example({
        "result": "failed", "reason": "table shop.public.orders: 1200 rows recorded, 1199 "
        "restored", "job_id": "job-20261203T050500Z-1a2b3c", "seconds": 41.2, "exact": True,
        "method": "rows counted in the dump's own COPY data",
        "figures": {"shop.public.orders": 1199, "role:app": 1}, "truncated": False,
        "differences": [{"name": "shop.public.orders", "recorded": 1200, "measured": 1199}]})

    result: Literal["passed", "failed"]
    reason: str | None = Field(description="why it failed, in one line; null when it passed")
    job_id: str | None = None
    seconds: float | None = Field(None, description="how long the restore and checks took")
    exact: bool | None = Field(None, description="false: the recorded figures are estimates "
                               "(pg_class), compared as such")
    method: str | None = Field(None, description="how the figures were taken at backup time")
    figures: dict[str, int | str] = Field(
        default_factory=dict, description="the figures compared, as measured on the copy "
        "(at most 1,000; see truncated)")
    truncated: bool = False
    differences: list[FigureDifference] = Field(
        default_factory=list, description="the figures that differ (at most 100)")


class VerifiedRestoreResult(Verification):
    """A ``verify-restore`` job's result (``holdfast verify --restore --json``):
    the snapshot restored and measured, and the verdict recorded on it; the job
    succeeds with ``result: failed`` when the snapshot did not restore or differs."""

    model_config = _example({
        "snapshot_id": SNAPSHOT_ID, "instance": "prod-db",
        "verified_at": "2026-12-03T05:05:41Z", "result": "passed", "reason": None,
        "job_id": "job-20261203T050500Z-1a2b3c", "seconds": 41.2, "exact": True,
        "method": "rows counted in the dump's own COPY data", "truncated": False,
        "figures": {"shop.public.orders": 1200, "role:app": 1}, "differences": []})

    snapshot_id: str
    instance: str
    verified_at: Timestamp


class Snapshot(BaseModel):
    """One snapshot, as ``holdfast snapshots --json`` prints it."""

    model_config = _example(_SNAPSHOT_EXAMPLE)

    id: str
    instance: str
    engine: str = Field(description="postgres, mariadb, mysql, redis or volume")
    target: str = Field(description="the storage target holding it")
    status: SnapshotStatus
    size_bytes: int | None = Field(description="stored bytes (compressed, encrypted)")
    raw_bytes: int | None = Field(description="bytes of the dump before compression")
    sha256: str | None = Field(description="of the stored data object")
    created_at: Timestamp
    finished_at: Timestamp | None
    image: str
    image_id: str
    data_key: str = Field(description="the data object's key in its target")
    error: str | None
    pinned: bool = Field(description="retention never removes it; it cannot be deleted")
    tags: dict[str, str] = Field(description="user tags, also in its manifest")
    encryption: str | None = Field(description="age-v1 when its data object is encrypted")
    recipients: list[str] = Field(description="fingerprints of the age recipients it is "
                                  "encrypted to (age:<16 hex> or SHA256:...), never a key")
    verified_at: Timestamp | None = Field(description="when a verified restore of it last ended")
    verification: Verification | None = Field(
        description="that verified restore's outcome, with the figures compared")


class BackupResult(Snapshot):
    """A backup job's result: the snapshot taken, and what retention removed after it."""

    model_config = _example({**_SNAPSHOT_EXAMPLE, "pruned": [], "verification_job": None})

    pruned: list[str] = Field(description="ids of the snapshots retention removed after it")
    verification_job: str | None = Field(
        None, description="the verified restore it queued (holdfast.verify=after-backup)")


# --- restores, clones --------------------------------------------------------------------


class NetworkEndpoint(BaseModel):
    """The restored container's place on one network."""

    model_config = _example({"ip_address": "172.18.0.5", "aliases": ["db"]})

    ip_address: str
    aliases: list[str]


class PortBinding(BaseModel):
    """One host address a container port is published on."""

    model_config = _example({"host_ip": "127.0.0.1", "host_port": 49153})

    host_ip: str
    host_port: int


class ConnectionUrls(BaseModel):
    """Connection URLs filled in; passwords stay ``{VARIABLE}`` placeholders. Empty
    when the engine has no URL (a volume snapshot)."""

    model_config = _example({
        "published": "postgresql://app:{POSTGRES_PASSWORD}@127.0.0.1:49153/appdb",
        "networks": {"ci-net": "postgresql://app:{POSTGRES_PASSWORD}@db:5432/appdb"}})

    published: str | None = Field(default=None, description="through the published port; "
                                  "absent when no port is published")
    networks: dict[str, str | None] = Field(
        default_factory=dict, description="per network: by the container's alias there "
        "(else its name) and the engine's port")


class ReplacedContainer(BaseModel):
    """A container kept aside, stopped, with its volumes."""

    model_config = _example({"container": "prod-db-replaced-20261203T054500Z",
                             "container_id": CONTAINER_ID, "status": "stopped"})

    container: str
    container_id: str
    status: Literal["stopped"]


_RESTORE_EXAMPLE: dict[str, Any] = {
    "snapshot_id": SNAPSHOT_ID, "container": "ci-db", "container_id": CONTAINER_ID,
    "volumes": ["ci-db-data"], "image": "postgres:15", "databases": ["appdb"],
    "seconds": 6.412,
    "networks": {"ci-net": {"ip_address": "172.18.0.5", "aliases": ["db"]}},
    "ports": {"5432/tcp": [{"host_ip": "127.0.0.1", "host_port": 49153}]},
    "url_template": "postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/appdb",
    "urls": {"published": "postgresql://app:{POSTGRES_PASSWORD}@127.0.0.1:49153/appdb",
             "networks": {"ci-net": "postgresql://app:{POSTGRES_PASSWORD}@db:5432/appdb"}},
    "expires_at": "2026-12-03T09:00:10Z", "replaced": None,
    "method": "reflink", "warm": "prod-db-warm-20261203T040000Z", "note": None,
}


class RestoreResult(BaseModel):
    """A restore job's result: what the next step needs, never a password."""

    model_config = _example(_RESTORE_EXAMPLE)

    snapshot_id: str
    container: str = Field(description="the new container's name")
    container_id: str
    volumes: list[str]
    image: str
    databases: list[str]
    seconds: float
    networks: dict[str, NetworkEndpoint] = Field(description="per network joined")
    ports: dict[str, list[PortBinding]] = Field(
        description='published ports: "5432/tcp" -> the host addresses it is bound to')
    url_template: str | None = Field(description="the connection URL with HOST and PORT to "
                                     "fill in; null for an engine without one")
    urls: ConnectionUrls
    expires_at: Timestamp | None = Field(description="when its TTL removes it; null: never")
    replaced: ReplacedContainer | None = Field(description="with replace: the old "
                                               "container, renamed aside")
    expired: ExpiredCopy | None = Field(default=None, description="once its TTL has "
                                        "passed: what the daemon removed")
    method: Literal["stream", "reflink", "copy"] = Field(
        default="stream", description="how the volumes were filled: the snapshot streamed "
        "and loaded, or a warm copy's volumes cloned with reflinks or copied")
    warm: str | None = Field(default=None, description="the warm copy cloned; null: none")
    note: str | None = Field(default=None, description="why no warm copy was cloned, or why "
                             "it was copied rather than reflinked; null: nothing to say")


class ExpiredCopy(BaseModel):
    """What the daemon did when the copy's TTL passed."""

    model_config = _example({"name": "ci-db", "container_id": CONTAINER_ID,
                             "container_removed": True, "volumes_removed": ["ci-db-data"],
                             "error": None, "removed_at": "2026-12-03T09:00:12Z"})

    name: str
    container_id: str
    container_removed: bool
    volumes_removed: list[str]
    error: str | None = Field(description="why it was not (all) removed; null: it was")
    removed_at: Timestamp | None


# --- jobs --------------------------------------------------------------------------------

_JOB_EXAMPLE: dict[str, Any] = {
    "id": JOB_ID, "kind": "backup", "status": "running", "instance": "prod-db",
    "snapshot_id": None, "created_at": "2026-12-03T05:00:00Z",
    "started_at": "2026-12-03T05:00:00Z", "finished_at": None, "error": None,
    "result": None, "phase": "dumping", "bytes_done": 52428800, "bytes_total": 104857600,
    "rate": 10485760.0, "eta_seconds": 5.0,
}


JobKind = Literal["backup", "restore", "clone", "verify", "verify-target", "verify-restore",
                  "warm"]
"""Every kind of job the daemon runs (``GET /v1/jobs?kind=`` filters by one)."""


class Job(BaseModel):
    """A backup, restore, clone or verification started through the API; ``result``
    once it succeeded (a verification that found damage succeeds, ``whole: false``)."""

    model_config = _example(_JOB_EXAMPLE)

    id: str
    kind: JobKind
    status: JobStatus
    instance: str | None
    snapshot_id: str | None = Field(description="the snapshot made or restored")
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None = Field(description="set once it has ended")
    error: str | None = Field(description="why it failed or was cancelled, on one line")
    error_type: str | None = Field(default=None, description="a failed job's error class "
                                   "(as a problem's kind), e.g. DumpFailed")
    result: BackupResult | RestoreResult | CloneResult | VerifyResult | VerifyTargetResult | \
        VerifiedRestoreResult | WarmResult | None = Field(
            description="once succeeded: the snapshot (backup), the restore, the clone, the "
            "verification's report, or a verified restore's verdict")
    phase: Phase | None
    bytes_done: int | None
    bytes_total: int | None = Field(description="the size, where known (a backup's is the "
                                    "previous snapshot's, an estimate)")
    rate: float | None = Field(description="bytes per second while data flowed")
    eta_seconds: float | None = Field(description="while running, where the size is known")
    host: str | None = Field(default=None, description="the host (GET /v1/hosts) whose "
                             "daemon runs it")


# --- instances ---------------------------------------------------------------------------


class LastSnapshot(BaseModel):
    """An instance's newest snapshot, in brief."""

    model_config = _example({"id": SNAPSHOT_ID, "status": "complete",
                             "created_at": "2026-12-03T05:00:00Z", "error": None})

    id: str
    status: SnapshotStatus
    created_at: Timestamp
    error: str | None


class Instance(BaseModel):
    """A discovered instance, as ``holdfast instances --json`` prints it."""

    model_config = _example({
        "name": "prod-db", "container": "prod-db", "container_id": CONTAINER_ID,
        "status": "running", "engine": "postgres", "image": "postgres:15", "enabled": True,
        "schedule": "@daily", "retention": {"last": 3, "daily": 7}, "target": "local",
        "databases": [], "verify": "after-backup", "errors": [],
        "last_snapshot": {"id": SNAPSHOT_ID, "status": "complete",
                          "created_at": "2026-12-03T05:00:00Z", "error": None},
        "next_run": "2026-12-04T00:00:00Z", "policy_source": "labels",
        "notify": ["ops"], "stale_after": None, "ping": True, "host": "edge-1"})

    name: str
    container: str | None
    container_id: str | None
    status: str = Field(description="running, stopped, missing (no container now), or "
                        "remote (discovered by another host's daemon: see host)")
    engine: str | None
    image: str | None
    enabled: bool
    schedule: str | None
    retention: dict[str, int] = Field(description="last, hourly, daily, weekly, monthly, "
                                      "yearly: how many to keep")
    target: str
    databases: list[str] = Field(description="databases dumped; empty: all user databases")
    verify: str | None = Field(description="holdfast.verify: a schedule or after-backup; "
                               "null: no verified restores")
    errors: list[str] = Field(description="label values that do not parse, and why")
    last_snapshot: LastSnapshot | None
    next_run: Timestamp | None
    policy_source: Literal["labels", "api"]
    notify: list[str] | None = Field(description="holdfast.notify: the channels its events "
                                     "go to; null: every channel")
    stale_after: int | None = Field(description="holdfast.stale_after in seconds; null: "
                                    "stale after two scheduled runs without a snapshot")
    ping: bool = Field(description="whether holdfast.ping is set (its URL is never shown)")
    host: str | None = Field(default=None, description="the host (holdfast hosts) whose "
                             "engine runs it; for a missing one, where it was last seen")
    host_status: Literal["alive", "stale"] | None = Field(default=None, description="that "
                                                          "host's heartbeat: stale means down")


class Forgotten(BaseModel):
    """What forgetting an instance removed from the catalog."""

    model_config = _example({"instance": "old-db", "snapshots": [SNAPSHOT_ID],
                             "objects_kept": True})

    instance: str
    snapshots: list[str] = Field(description="ids of the snapshot rows removed")
    objects_kept: bool = Field(description="always true: the objects stay in the targets")


class PruneResult(BaseModel):
    """What retention kept and removed (or, with dry_run, would remove)."""

    model_config = _example({"instance": "prod-db", "policy": {"last": 3},
                             "kept": [SNAPSHOT_ID], "forgotten": [], "dry_run": True,
                             "failures": []})

    instance: str
    policy: dict[str, int] = Field(description="the retention applied (empty: keep all)")
    kept: list[str]
    forgotten: list[str] = Field(description="ids deleted (with dry_run: that would be)")
    dry_run: bool
    failures: list[str] = Field(default_factory=list, description=(
        "one line per target whose deletions failed; their snapshots are tried again"
        " at the next prune"))


# --- notifications -------------------------------------------------------------------------

DeliveryState = Literal["queued", "retrying", "delivered", "failed", "dropped"]


class Delivery(BaseModel):
    """One notification or ping to one channel: its event, reason and outcome."""

    model_config = _example({
        "id": "ntf-3f9a0c1b2d4e", "channel": "ops", "event": "backup.failed",
        "instance": "prod-db", "reason": "pg_dump: connection refused", "status": "delivered",
        "attempts": 1, "error": None, "created_at": "2026-12-03T05:00:01Z",
        "finished_at": "2026-12-03T05:00:01Z"})

    id: str
    channel: str = Field(description="the channel's name, or ping:<instance> for a "
                         "dead-man ping; never a URL")
    event: str = Field(description="backup.failed, backup.succeeded, backup.stale, "
                       "verify.failed, restore.failed, retention.failed, target.unreachable, "
                       "recovered, test, or ping.start / ping.success / ping.fail")
    instance: str | None
    reason: str = Field(description="the event's one-line reason")
    status: DeliveryState = Field(description="queued and retrying until it ends delivered, "
                                  "failed (retries ran out) or dropped (the queue was full)")
    attempts: int
    error: str | None = Field(description="the last attempt's failure; names no secret")
    created_at: str
    finished_at: str | None


class Channel(BaseModel):
    """A configured notification channel, shown without its URL's path or token."""

    model_config = _example({"name": "ops", "kind": "webhook",
                             "destination": "https://hooks.example.com",
                             "events": ["backup.failed", "backup.stale", "recovered"],
                             "signed": True})

    name: str
    kind: Literal["webhook", "apprise"]
    destination: str = Field(description="scheme and host only")
    events: list[str]
    signed: bool = Field(description="the webhook carries X-Holdfast-Signature")


# --- volumes, targets, health ------------------------------------------------------------


class VolumeUser(BaseModel):
    """A container using a volume."""

    model_config = _example({"name": "shop-db", "id": CONTAINER_ID, "running": True})

    name: str
    id: str
    running: bool


class Volume(BaseModel):
    """A named volume, as ``holdfast volumes ls --json`` prints it."""

    model_config = _example({
        "name": "shop-data", "driver": "local", "labels": {"team": "shop"},
        "created_at": "2026-12-01T09:30:00Z", "size_bytes": 104857600,
        "users": [{"name": "shop-db", "id": CONTAINER_ID, "running": True}],
        "in_use": True})

    name: str
    driver: str
    labels: dict[str, str]
    created_at: Timestamp | None
    size_bytes: int | None = Field(description="null when not measured")
    users: list[VolumeUser]
    in_use: bool


class TargetCheck(BaseModel):
    """A storage target's probe: written, read back and deleted."""

    model_config = _example({"name": "local", "url": "file:///var/lib/holdfast/snapshots",
                             "ok": True, "seconds": 0.012, "error": None})

    name: str
    url: str
    ok: bool
    seconds: float
    error: str | None


class Health(BaseModel):
    """The process is up."""

    model_config = _example({"status": "ok", "version": "0.1.0"})

    status: Literal["ok"]
    version: str


class Ready(BaseModel):
    """Readiness: each part's ``ok``, or why it is not."""

    model_config = _example({"ready": True, "checks": {
        "catalog": "ok", "docker": "ok", "discovery": "ok", "scheduler": "ok"}})

    ready: bool
    checks: dict[str, str]


METRICS_EXAMPLE = ("# HELP holdfast_snapshots_total Snapshots taken\n"
                   "# TYPE holdfast_snapshots_total counter\n"
                   'holdfast_snapshots_total{instance="prod-db",status="complete"} 3.0\n')
