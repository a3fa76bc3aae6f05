"""Live discovery: follow the Docker engine and keep the scheduler in step.

At start, and after every reconnect, every labelled container is listed and
classified; then the engine's container events (start, die, destroy, rename)
are followed, and each one re-inspects just that container, so a newly
labelled container is scheduled within a second or two and a removed one stops
being scheduled (its history stays in the catalog). If the engine restarts or
the stream drops, discovery retries with exponential back-off (1 s to 30 s)
and never stops the daemon or its API. Its :attr:`Discovery.status` tells
readiness whether it works: not before its first listing, nor while it has
been failing for longer than its longest back-off. A container whose labels
do not parse is logged once (a warning naming the container and the error),
again only when that error changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from backup.errors import EventStreamEnded, HoldfastError, NotFound
from service.bootstrap import Services
from service.ports import ContainerEvents
from service.status import LoopStatus
from service.usecases.instances import (
    Instance,
    choose_instances,
    classify,
    record_instances,
    release_clashes,
)

logger = logging.getLogger(__name__)

Sync = Callable[[list[Instance], bool], None]
"""Receives every instance (not a delta) and whether missed runs should catch up."""


class Discovery:
    def __init__(self, services: Services, sync: Sync, *, max_backoff: float = 30.0) -> None:
        self._services = services
        self._sync = sync
        self._max_backoff = max_backoff
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._by_container: dict[str, Instance] = {}
        self._events: ContainerEvents | None = None
        self._thread = threading.Thread(target=self._follow, name="holdfast-discovery",
                                        daemon=True)
        self.connected = threading.Event()
        self.last_event_at: float | None = None
        self.status = LoopStatus("discovery", grace=max_backoff)
        """Its readiness: working after a full listing, failing after errors past the back-off."""
        self._reported: dict[str, tuple[str, ...]] = {}
        """Container id -> the label errors last logged for it (each logged once)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        events = self._events
        if events is not None:
            events.close()
        self._thread.join(timeout)

    def health(self) -> str | None:
        """None while discovery follows the engine, else why not (for ``/readyz``)."""
        if not self._thread.is_alive():
            return "discovery is not running" + (
                "" if self._thread.ident is None else "; its loop stopped")
        return self.status.problem()

    def instances(self) -> list[Instance]:
        with self._lock:
            return choose_instances(self._by_container.values())

    def refresh(self) -> list[Instance]:
        """List and classify every labelled container, then sync (with catch-up)."""
        found: dict[str, Instance] = {}
        for container in self._services.docker.labelled_containers(
                include_stopped=True, scope=self._services.settings.scope):
            instance = classify(self._services, container)
            if instance is not None:
                found[container.id] = instance
        with self._lock:
            self._by_container = found
        for container_id in set(self._reported) - set(found):
            self._report(container_id, None)
        for container_id, instance in found.items():
            self._report(container_id, instance)
        instances = self.instances()
        record_instances(self._services, instances)
        release_clashes(self._services, instances)
        self._sync(instances, True)
        self.status.ok()
        return instances

    def _report(self, container_id: str, instance: Instance | None) -> None:
        """Log a container's label errors when they first appear or change, not
        on every listing (discovery re-lists after each reconnect)."""
        errors = instance.errors if instance is not None else ()
        with self._lock:
            before = self._reported.get(container_id, ())
            if errors == before:
                return
            if errors:
                self._reported[container_id] = errors
            else:
                self._reported.pop(container_id, None)
        if instance is None or instance.container is None:
            return  # gone, or no longer labelled: nothing to fix
        name, container = instance.name, instance.container.name
        if errors:
            logger.warning("container %s (instance %s) has label errors; Holdfast will not "
                           "back it up until they are fixed: %s", container, name,
                           "; ".join(errors), extra={"instance": name})
        else:
            logger.info("container %s (instance %s): its labels are fixed", container, name,
                        extra={"instance": name})

    def _on_event(self, action: str, container_id: str) -> None:
        instance: Instance | None = None
        if action != "destroy":
            try:
                container = self._services.docker.inspect(container_id)
            except NotFound:
                container = None
            if container is not None:
                instance = classify(self._services, container)
        with self._lock:
            before = self._by_container.get(container_id)
            if instance is None:
                self._by_container.pop(container_id, None)
            else:
                self._by_container[container_id] = instance
        self._report(container_id, instance)
        if before is None and instance is None:
            return  # a container Holdfast does not manage
        instances = self.instances()
        if instance is not None:
            record_instances(
                self._services, [i for i in instances if i.name == instance.name])
        release_clashes(self._services, instances)
        self._sync(instances, False)
        self.last_event_at = time.monotonic()
        logger.info("container %s %s; %d instance(s) now", container_id[:12], action,
                    len(instances))

    def _follow(self) -> None:
        delay = min(1.0, self._max_backoff)
        while not self._stopping.is_set():
            try:
                events = self._services.docker.container_events(
                    scope=self._services.settings.scope)
                self._events = events
                # Listing after subscribing means no change can fall between the two.
                self.refresh()
                self.connected.set()
                delay = min(1.0, self._max_backoff)
                for action, container_id in events:
                    if self._stopping.is_set():
                        break
                    try:
                        self._on_event(action, container_id)
                    except HoldfastError as exc:
                        logger.warning("could not follow %s of %s: %s", action,
                                       container_id[:12], exc)
                if not self._stopping.is_set():
                    raise EventStreamEnded("the Docker event stream ended")
            except Exception as exc:  # discovery must outlive any failure
                self.connected.clear()
                if self._stopping.is_set():
                    break
                self.status.failing(str(exc) or type(exc).__name__)
                logger.warning("lost the Docker engine (%s); retrying in %.0fs", exc, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, self._max_backoff)
            finally:
                if self._events is not None:
                    self._events.close()
                    self._events = None
