"""The fleet's ports: the hosts of one catalog and the work that passes between them.

Part of :class:`service.ports.CatalogPort`, kept here so the catalog's
contract for a fleet (:mod:`service.hosts`, :mod:`service.usecases.fleet`)
reads in one place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from service.hosts import HostRecord
from service.records import JobRecord


class HostRegistry(Protocol):
    """The fleet's hosts (:mod:`service.hosts`), one row per Docker engine."""

    def save_host(self, h: HostRecord) -> None:
        """Insert the host ``h.name``, or replace its row (a heartbeat)."""
        ...

    def list_hosts(self) -> list[HostRecord]:
        """Every host that ever registered, by name."""
        ...


class FleetWorkQueue(Protocol):
    """Work between the fleet's daemons (:mod:`service.usecases.fleet`): jobs
    one daemon queues for another host, the leases that vouch for running jobs,
    and the slots that make a schedule run once across the fleet."""

    def claim_requests(self, host: str, limit: int, lease_until: datetime) -> list[JobRecord]:
        """Give ``host`` up to ``limit`` of the requests queued for it (queued jobs
        with a ``request`` and no lease), oldest first, leased until ``lease_until``;
        each to one caller only, however many claim at once."""
        ...

    def renew_leases(self, host: str, lease_until: datetime) -> int:
        """Move the lease of every leased, unfinished job of ``host`` to
        ``lease_until``; how many were renewed."""
        ...

    def interrupt_expired(self, now: datetime, spare_host: str, error: str) -> list[JobRecord]:
        """Mark ``interrupted`` (finished now, with ``error``) every unfinished
        job whose lease ran out before ``now``, except ``spare_host``'s own; the
        jobs so marked. Jobs without a lease are never touched."""
        ...

    def cancel_unclaimed(self, job_id: str, now: datetime, reason: str) -> JobRecord | None:
        """Mark job ``job_id`` ``cancelled`` (finished ``now``, with error
        ``reason``) if it is a request no host has claimed yet (queued, with a
        ``request`` and no lease), in one step against :meth:`claim_requests`:
        either its host claims it or this cancels it, never both. The job so
        marked; None if it is no such request (claimed or ended meanwhile, or
        not a request at all, or unknown), which is then left as it was."""
        ...

    def request_cancel(self, job_id: str, now: datetime) -> bool:
        """Ask the host of unfinished job ``job_id`` to cancel it: set its
        ``cancel_requested_at`` to ``now`` (the first request's time is kept if
        one was already made). False if the job has ended (or is unknown):
        nothing is written then. Saving the job (:meth:`save_job`, its host's
        progress) never clears the request."""
        ...

    def cancel_requests(self, host: str) -> list[str]:
        """The ids of ``host``'s unfinished jobs whose cancel was asked for
        (:meth:`request_cancel`), oldest first: its daemon cancels them."""
        ...

    def claim_slot(self, instance: str, kind: str, slot: datetime, host: str,
                   now: datetime) -> bool:
        """Claim the run of ``kind`` of ``instance`` scheduled at ``slot`` for
        ``host``: True for the one caller that gets it, False for every other."""
        ...

    def prune_slots(self, before: datetime) -> int:
        """Forget the slots claimed before ``before``; how many."""
        ...

    def set_instance_clash(self, name: str, clash: str | None, host: str | None) -> None:
        """Record (or with None clear) why instance ``name``'s name clashes
        across hosts, as host ``host`` found it; discovery's upserts keep it."""
        ...
