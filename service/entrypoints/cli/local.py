"""The CLI's backend on this machine: the use cases over the services the
command opened, each answer as its ``to_json()`` (see :mod:`.backend`).

Use cases are imported by the method that calls them, as in :mod:`.commands`,
so a command loads only what it uses.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from service.entrypoints.cli.backend import Follow, Json

if TYPE_CHECKING:
    from service.bootstrap import Services


def creator() -> str:
    """Who made a token from the command line: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in the environment or the user database
        return "cli"


class LocalBackend:
    """:class:`~.backend.HoldfastBackend` over ``services`` (open for one command)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def list_instances(self) -> list[Json]:
        from service.usecases import instances

        return [view.to_json() for view in instances.list_instances(self.services)]

    def forget_instance(self, name: str) -> Json:
        from service.usecases import instances

        return instances.forget_instance(self.services, name).to_json()

    def backup(self, instance: str, target: str | None, tags: Mapping[str, str], pin: bool,
               progress: Follow) -> Json:
        from service.usecases import backups

        request = backups.prepare_backup(self.services, instance, target, tags=dict(tags),
                                         pin=pin)
        with progress as shown:
            snapshot, pruned = backups.backup_then_prune(self.services, request, shown)
        # Verified restores after a backup are the daemon's (holdfast.verify), not a CLI run's.
        return {**snapshot.to_json(), "pruned": pruned.forgotten, "verification_job": None}

    def list_snapshots(self, instance: str | None, tags: Mapping[str, str]) -> list[Json]:
        from service.usecases import snapshots

        return [s.to_json() for s in snapshots.list_snapshots(self.services, instance, tags)]

    def delete_snapshot(self, ref: str) -> Json:
        from service.usecases import snapshots

        return snapshots.delete_snapshot(self.services, ref).to_json()

    def pin(self, ref: str, pinned: bool) -> Json:
        from service.usecases import checkpoints

        change = checkpoints.pin_snapshot if pinned else checkpoints.unpin_snapshot
        return change(self.services, ref).to_json()

    def restore(self, ref: str, body: Json, progress: Follow, *, latest: bool = False,
                tags: Mapping[str, str] | None = None) -> Json:
        from restore.copies import RestoreOptions
        from service.usecases import restores

        if body.get("host") not in (None, self.services.host_name()):
            return self._restore_on(str(body["host"]), ref, body, progress,
                                    latest=latest or bool(tags), tags=tags)
        options = RestoreOptions(network=body.get("network"), alias=body.get("alias"),
                                 publish=body.get("publish"), labels=body.get("labels") or {},
                                 ttl=body.get("ttl"), warm=body.get("warm", True))
        arguments: dict[str, Any] = {"image": body.get("image"), "force": bool(body.get("force")),
                                     "options": options, "replace": body.get("replace")}
        if latest or tags:
            request = restores.prepare_latest_restore(self.services, ref, body.get("name"),
                                                      tags=tags or None, **arguments)
        else:
            request = restores.prepare_restore(self.services, ref, body.get("name"), **arguments)
        with progress as shown:
            return restores.execute_restore(self.services, request, shown).to_json()

    def _restore_on(self, host: str, ref: str, body: Json, progress: Follow, *,
                    latest: bool, tags: Mapping[str, str] | None) -> Json:
        """A restore made by host ``host``'s daemon: queued in the catalog, waited for."""
        from backup.errors import HoldfastError
        from service.adapters.api_client.errors import error_of
        from service.entrypoints.cli.remote import error_classes
        from service.records import ERROR_TYPE, JobStatus
        from service.usecases import fleet

        asked = fleet.RestoreAsked(snapshot=None if latest else ref, name=body.get("name"),
                                   host=host, latest_of=ref if latest else None, tags=tags)
        rest = {key: value for key, value in body.items() if key != "host"}
        with progress:
            job = fleet.await_request(self.services, fleet.queue_restore(
                self.services, asked, request={"body": rest}))
        if job.status == JobStatus.SUCCEEDED:
            return dict(job.result or {})
        # As the API client rebuilds a remote job's error: the class it names (a
        # cancelled one's Cancelled), made without its own constructor's arguments.
        kind = (job.result or {}).get(ERROR_TYPE) or (
            "Cancelled" if job.status == JobStatus.CANCELLED else None)
        raise error_of(kind, f"job {job.id} on host {host} {job.status}: {job.error}",
                       error_classes()[0], HoldfastError)

    def undo_replace(self, name: str) -> Json:
        from service.usecases import replace

        return replace.undo_replace(self.services, name).to_json()

    def prune(self, instance: str | None, dry_run: bool) -> list[Json]:
        from service.usecases import retention

        return [r.to_json() for r in retention.prune(self.services, instance, dry_run=dry_run)]

    def check_targets(self, names: list[str] | None) -> list[Json]:
        from service.usecases import targets

        return [r.to_json() for r in targets.check_targets(self.services, names)]

    def verify_snapshot(self, ref: str, progress: Follow) -> Json:
        from service.usecases import integrity

        request = integrity.prepare_verify(self.services, ref)
        with progress as shown:
            return integrity.execute_verify(request, shown).to_json()

    def verify_restore(self, ref: str, progress: Follow) -> Json:
        from service.usecases import verification

        request = verification.prepare_verified_restore(self.services, ref)
        with progress as shown:
            snapshot = verification.execute_verified_restore(self.services, request,
                                                             progress=shown)
        return verification.verification_result(snapshot)

    def verify_target(self, name: str, progress: Follow) -> Json:
        from service.usecases import integrity

        request = integrity.prepare_verify_target(self.services, name)
        with progress:
            return integrity.execute_verify_target(self.services, request).to_json()

    def rebuild_catalog(self) -> Json:
        from service.usecases import snapshots

        return snapshots.rebuild_catalog(self.services).to_json()

    def list_copies(self) -> list[Json]:
        from service.usecases import copies

        now = datetime.now(UTC)
        return [copy.to_json(now) for copy in copies.list_copies(self.services)]

    def extend_copy(self, name: str, ttl: str) -> Json:
        from service.usecases import copies

        now = datetime.now(UTC)
        return copies.extend_copy(self.services, name, ttl, now).to_json(now)

    def create_token(self, name: str, scopes: list[str], expires: str | None) -> Json:
        from service.usecases import tokens

        return tokens.create_token(self.services, name, scopes, expires, created_by=creator(),
                                   now=datetime.now(UTC)).to_json()

    def list_tokens(self) -> list[Json]:
        from service.usecases import tokens

        return [t.to_json() for t in tokens.list_tokens(self.services)]

    def revoke_token(self, name: str) -> None:
        from service.usecases import tokens

        tokens.revoke_token(self.services, name)

    def list_notifications(self, limit: int, channel: str | None, event: str | None,
                           instance: str | None, status: str | None) -> list[Json]:
        from service.records import DeliveryStatus
        from service.usecases import notifications

        return [d.to_json() for d in notifications.list_deliveries(
            self.services.catalog, limit=limit, channel=channel, event=event,
            instance=instance, status=DeliveryStatus(status) if status else None)]

    def list_channels(self) -> list[Json]:
        from service.usecases import notifications

        return notifications.describe_channels(self.services.settings.notify_channels)

    def test_channel(self, channel: str) -> Json:
        from service.usecases import notifications

        return notifications.test_channel(self.services, channel).to_json()

    def list_volumes(self, sizes: bool) -> list[Json]:
        from service.usecases import volumes

        return [v.to_json() for v in volumes.list_volumes(self.services, sizes=sizes)]

    def create_volume(self, name: str, labels: Mapping[str, str]) -> Json:
        from service.usecases import volumes

        return volumes.create_volume(self.services, name, labels).to_json()

    def remove_volume(self, name: str) -> Json:
        from service.usecases import volumes

        return volumes.remove_volume(self.services, name).to_json()

    def clone_volume(self, source: str, target: str, force: bool, progress: Follow) -> Json:
        from service.usecases import volumes

        plan = volumes.prepare_clone(self.services, source, target, force)
        with progress:
            return volumes.execute_clone(self.services, plan).to_json()

    def list_hosts(self) -> list[Json]:
        from service.usecases import hosts

        return hosts.list_hosts(self.services)

    def list_warm(self, instance: str | None) -> list[Json]:
        from service.usecases import warm_copies

        return [w.to_json() for w in warm_copies.list_warm_copies(self.services, instance)]

    def refresh_warm(self, instance: str, snapshot: str | None, progress: Follow) -> Json:
        from service.usecases import warm

        refresh = warm.prepare_warm_refresh(self.services, instance, snapshot)
        with progress as shown:
            return warm.execute_warm_refresh(self.services, refresh, progress=shown).to_json()

    def remove_warm(self, instance: str) -> list[Json]:
        from service.usecases import warm_copies

        return [w.to_json() for w in warm_copies.remove_warm_copies(self.services, instance)]
