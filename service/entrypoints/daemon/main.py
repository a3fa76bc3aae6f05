"""``holdfast serve``: the long-running process ops leave on for months.

Start-up order matters: the catalog is migrated (in bootstrap), the daemon
lock is taken (one daemon per data directory and catalog), interrupted runs
are recovered before anything new starts, then the job runner, the
scheduler, live discovery and the copy reaper come up, and finally the HTTP
API. On SIGTERM or SIGINT uvicorn stops serving; then discovery, the
scheduler and the reaper stop, queued
jobs are cancelled, and running snapshots get ``HOLDFAST_SHUTDOWN_GRACE``
seconds to finish before they are cancelled cleanly (partial data discarded,
snapshot marked failed).
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import uvicorn

from backup.labels import InstancePolicy
from service.adapters.notify.registry import Destinations, check_channels
from service.bootstrap import Services, bootstrap, daemon_lock
from service.entrypoints.api import create_app
from service.entrypoints.daemon.binding import check_exposure, ensure_port_free
from service.entrypoints.daemon.claims import Claims
from service.entrypoints.daemon.discovery import Discovery
from service.entrypoints.daemon.heartbeat import Heartbeat
from service.entrypoints.daemon.reaper import CopyReaper
from service.entrypoints.daemon.scheduler import Scheduler
from service.entrypoints.daemon.watchdog import Watchdog
from service.hosts import lease_seconds
from service.observability.logs import configure_logging
from service.observability.metrics import Metrics
from service.ports import DaemonLock, DaemonOwner
from service.settings import Settings
from service.usecases.jobs import JobRunner
from service.usecases.keys import check_key_settings
from service.usecases.notifications import DeliveryRecorder, Notifier, default_link_base
from service.usecases.outbox import Outbox
from service.usecases.recovery import recover

logger = logging.getLogger(__name__)


def run_daemon(settings: Settings, host: str | None = None, port: int | None = None,
               lock: DaemonLock | None = None) -> None:
    """Serve until SIGTERM or SIGINT. Refuses to start, with
    :class:`~backup.errors.DaemonAlreadyRunning` (exit 4), while another daemon
    holds the data directory or the catalog (``lock``: :func:`daemon_lock` by default).
    Refuses an address in use (:class:`~backup.errors.AddressInUse`, exit 4), and
    age recipients or an identity file that do not parse (exit 2); with
    authentication turned off (``--insecure-no-auth``) logs a warning."""
    configure_logging(settings.log_level, settings.log_format)
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    # Before anything is opened, so a refusal leaves nothing behind.
    exposed = check_exposure(bind_host, bind_port, insecure_no_auth=settings.api_insecure_no_auth)
    for line in check_key_settings(settings):
        logger.info(line)
    check_channels(settings.notify_channels)
    services = bootstrap(settings)
    held = daemon_lock(settings, services.host_name()) if lock is None else lock
    try:
        # Before recovery, which would take a live daemon's runs for interrupted ones.
        held.acquire(DaemonOwner.of_this_process())
    except BaseException:
        services.close()
        raise
    try:
        # After the lock, whose refusal names a daemon already serving from here;
        # before recovery and discovery start only to be stopped again.
        ensure_port_free(bind_host, bind_port)
    except BaseException:
        held.release()
        services.close()
        raise
    if exposed:
        logger.warning(exposed)
    try:
        _serve(settings, services, bind_host, bind_port)
    finally:
        held.release()


def _serve(settings: Settings, services: Services, bind_host: str, bind_port: int) -> None:
    # Before anything runs: a host name another live daemon holds stops it here.
    beats = Heartbeat(services, lambda: len(discovery.instances())
                      if discovery.connected.is_set() else 0)
    beats.start()
    report = recover(services)
    if report.interrupted or report.broken or report.discarded or report.jobs or \
            report.helpers:
        logger.warning("recovered at start-up: %d interrupted run(s) and %d job(s) marked "
                       "failed, %d snapshot(s) with missing data marked failed, %d incomplete "
                       "object(s) discarded, %d leftover helper container(s) removed",
                       len(report.interrupted), len(report.jobs), len(report.broken),
                       report.discarded, report.helpers)
    metrics = Metrics()
    metrics.seed(services.catalog.list_snapshots())
    outbox, notifier = _alerting(settings, services, metrics, (bind_host, bind_port),
                                 policy_of=lambda name: _policy_of(discovery, name))
    jobs = JobRunner(services, settings.job_workers, metrics, alerts=notifier,
                     lease_seconds=lease_seconds(settings.heartbeat_interval))
    claims = Claims(services, jobs)
    scheduler = Scheduler(services, jobs)
    discovery = Discovery(services, lambda instances, catch_up: scheduler.sync(
        instances, catch_up=catch_up))
    watchdog = Watchdog(services, notifier, lambda: discovery.instances()
                        if discovery.connected.is_set() else None)
    services.status.watch("discovery", discovery.health)  # /readyz asks both
    services.status.watch("scheduler", scheduler.health)
    app = create_app(services, jobs, next_run=lambda name, _: scheduler.next_run(name),
                     metrics=metrics,
                     refresh=discovery.refresh,
                     known_instances=lambda: discovery.instances()
                     if discovery.connected.is_set() else None)
    scheduler.start()
    discovery.start()
    claims.start()
    reaper = CopyReaper(services, settings.copy_reap_interval)
    reaper.start()  # its first sweep runs at once: copies that expired while it was down
    watchdog.start()
    for name, channel in sorted(settings.notify_channels.items()):
        logger.info("notification channel %s: %s, events %s", name, channel.described(),
                    ",".join(sorted(channel.events)))
    logger.info("holdfast serving on http://%s:%d (data in %s)", bind_host, bind_port,
                settings.data_dir)
    # uvicorn stops serving on SIGTERM, then re-raises the signal with the
    # handler that was installed before it; with the default one the process
    # would die there, skipping the graceful shutdown below.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(app, host=bind_host, port=bind_port, log_config=None, access_log=False)
    finally:
        logger.info("shutting down: no new work; running jobs get %.0fs",
                    settings.shutdown_grace)
        discovery.stop()
        claims.shutdown()
        scheduler.shutdown()
        reaper.shutdown()
        watchdog.shutdown()
        beats.shutdown()
        jobs.shutdown(grace=settings.shutdown_grace)
        # After the jobs: the events of runs cancelled at shutdown still go out.
        outbox.close(timeout=5.0)
        services.close()
        logger.info("stopped")


def _policy_of(discovery: Discovery, name: str) -> InstancePolicy | None:
    return next((i.policy for i in discovery.instances() if i.name == name), None)


def _alerting(settings: Settings, services: Services, metrics: Metrics,
              bound: tuple[str, int], policy_of: Callable[[str], InstancePolicy | None],
              ) -> tuple[Outbox, Notifier]:
    """The outbox that delivers in the background and the notifier that decides."""
    routes = services.senders or Destinations({})
    outbox = Outbox(routes, DeliveryRecorder(services.catalog, metrics.observe_delivery),
                    retry_for=settings.notify_retry_for)
    notifier = Notifier(
        services.catalog, {name: c.events for name, c in settings.notify_channels.items()},
        outbox, routes, policy_of=policy_of,
        link_base=default_link_base(settings.public_url, *bound))
    return outbox, notifier
