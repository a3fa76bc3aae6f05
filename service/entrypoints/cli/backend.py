"""What every ``holdfast`` command calls: the CLI's operations, answering the API's JSON.

Two implementations: :class:`~service.entrypoints.cli.local.LocalBackend` calls
the use cases on this machine's services and answers their ``to_json()``;
:class:`~service.adapters.api_client.client.RemoteBackend` (``--server URL``)
calls a daemon's HTTP API, whose bodies are the same ``to_json()``. The
commands format only these shapes, so a command prints the same in both modes
by construction. :func:`~service.entrypoints.cli.app.backend` picks one.

Errors are raised as :class:`~backup.errors.HoldfastError` subclasses in both
modes (the remote one maps the daemon's error ``type`` back to its class), so
the exit codes are the error table's in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

Json = dict[str, Any]
Follow = AbstractContextManager[Any]
"""The progress display of a long operation: entered around the work, and
called with ``(bytes so far, seconds)`` (:class:`~.progress.Progress`)."""


class HoldfastBackend(Protocol):
    """The operations of the CLI. Each answers what the API route of the same
    operation answers; failures raise the error of the error tree."""

    def list_instances(self) -> list[Json]:
        """``GET /v1/instances``: each instance's JSON."""

    def forget_instance(self, name: str) -> Json:
        """``DELETE /v1/instances/{name}``."""

    def backup(self, instance: str, target: str | None, tags: Mapping[str, str], pin: bool,
               progress: Follow) -> Json:
        """A snapshot taken now, once complete, with ``pruned`` (the ids retention
        then removed); ``progress`` is entered once the backup is under way."""

    def list_snapshots(self, instance: str | None, tags: Mapping[str, str]) -> list[Json]:
        """Snapshots, newest first, of ``instance``, carrying every tag."""

    def delete_snapshot(self, ref: str) -> Json:
        """Delete the snapshot ``ref`` names (an id or prefix); the snapshot deleted."""

    def pin(self, ref: str, pinned: bool) -> Json:
        """Pin (or unpin) a snapshot; the snapshot as it now is."""

    def restore(self, ref: str, body: Json, progress: Follow, *, latest: bool = False,
                tags: Mapping[str, str] | None = None) -> Json:
        """The restore's JSON once it accepts connections. ``ref`` is a snapshot
        id, or with ``latest``/``tags`` an instance; ``body`` is the API's
        restore body (``name``, ``image``, ``force``, ``network``, ``alias``,
        ``publish``, ``labels``, ``ttl``, ``replace``)."""

    def undo_replace(self, name: str) -> Json:
        """Swap the newest container a replace of ``name`` set aside back in."""

    def prune(self, instance: str | None, dry_run: bool) -> list[Json]:
        """Apply retention to every instance (or one); one result each."""

    def check_targets(self, names: list[str] | None) -> list[Json]:
        """Probe each configured target (or those named)."""

    def verify_snapshot(self, ref: str, progress: Follow) -> Json:
        """The verification report of snapshot ``ref`` (``whole``, ``checks``);
        ``progress`` is entered while the object is read."""

    def verify_restore(self, ref: str, progress: Follow) -> Json:
        """A verified restore of snapshot ``ref``: its verdict (``result``,
        ``reason``, ``figures``, ``differences``), also recorded on the snapshot."""

    def verify_target(self, name: str, progress: Follow) -> Json:
        """The verification report of every snapshot in target ``name``
        (``whole``, ``problems``, ``summary``, ``snapshots``)."""

    def rebuild_catalog(self) -> Json:
        """Rebuild the catalog's snapshot rows from the manifests."""

    def list_copies(self) -> list[Json]:
        """Live copies, newest first."""

    def extend_copy(self, name: str, ttl: str) -> Json:
        """Set copy ``name`` to expire ``ttl`` from now."""

    def create_token(self, name: str, scopes: list[str], expires: str | None) -> Json:
        """``{"name", "scopes", "expires_at", "token"}``: the secret only here."""

    def list_tokens(self) -> list[Json]:
        """Tokens by name, never a secret."""

    def revoke_token(self, name: str) -> None:
        """Revoke token ``name``."""

    def list_notifications(self, limit: int, channel: str | None, event: str | None,
                           instance: str | None, status: str | None) -> list[Json]:
        """Recent deliveries, newest first (``GET /v1/notifications``)."""

    def list_channels(self) -> list[Json]:
        """The configured channels, without their URLs' paths or tokens."""

    def test_channel(self, channel: str) -> Json:
        """Send a test message to ``channel`` now; its delivered record, else
        DeliveryFailed (exit 5) once the failure is recorded."""

    def list_volumes(self, sizes: bool) -> list[Json]:
        """Named volumes (with sizes if ``sizes``)."""

    def create_volume(self, name: str, labels: Mapping[str, str]) -> Json:
        """Create an empty volume."""

    def remove_volume(self, name: str) -> Json:
        """Remove an unused volume; the volume removed."""

    def clone_volume(self, source: str, target: str, force: bool, progress: Follow) -> Json:
        """Copy volume ``source`` into ``target``; the clone's JSON."""

    def list_hosts(self) -> list[Json]:
        """``GET /v1/hosts``: the fleet's hosts, by name."""

    def list_warm(self, instance: str | None) -> list[Json]:
        """``GET /v1/warm``: the warm copies (of ``instance``), newest first."""

    def refresh_warm(self, instance: str, snapshot: str | None, progress: Follow) -> Json:
        """``POST /v1/instances/{name}/warm``: the refresh's result once ready."""

    def remove_warm(self, instance: str) -> list[Json]:
        """``DELETE /v1/instances/{name}/warm``: the warm copies removed."""
