"""The one table from the error tree to HTTP statuses and CLI exit codes.

The API's exception handler and the CLI's failure line both look errors up
here, so a class means the same to a script reading exit codes as to one
reading statuses. Rows are tried in order and the first class the error is an
instance of wins, so more specific classes come first. Anything not listed is
an internal failure: HTTP 500, exit 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from backup import errors
from service.adapters.api_client.errors import ServerUnreachable
from service.adapters.catalog.urls import CatalogUnavailable
from service.usecases.jobs import ShuttingDown


@dataclass(frozen=True)
class Outcome:
    http_status: int
    exit_code: int


NOT_FOUND = Outcome(404, 3)
CONFLICT = Outcome(409, 4)
BAD_INPUT = Outcome(400, 2)
UNAVAILABLE = Outcome(503, 5)
INTERNAL = Outcome(500, 1)
UNAUTHORISED = Outcome(401, 6)
FORBIDDEN = Outcome(403, 7)

ERROR_TABLE: tuple[tuple[type[errors.HoldfastError], Outcome], ...] = (
    (errors.NotFound, NOT_FOUND),
    (errors.Unauthorised, UNAUTHORISED),
    (errors.Forbidden, FORBIDDEN),
    (errors.Conflict, CONFLICT),
    (errors.ContainerError, CONFLICT),
    # The engine said no to what the request carried (its 400, a name too long
    # for its file system): the same status as our own validation would give.
    (errors.DockerRejectedInput, BAD_INPUT),
    # The engine is up and said no (a port taken, a mount it cannot make).
    (errors.DockerRefused, CONFLICT),
    (errors.InvalidInput, BAD_INPUT),
    # Refused credentials, a bucket policy, a read-only directory: the daemon's
    # configuration is what to fix, as with a misconfigured target.
    (errors.StoragePermissionDenied, BAD_INPUT),
    (errors.DockerUnavailable, UNAVAILABLE),
    (errors.StorageUnavailable, UNAVAILABLE),
    (errors.DeliveryFailed, UNAVAILABLE),
    (CatalogUnavailable, UNAVAILABLE),
    # holdfast --server: the daemon did not answer.
    (ServerUnreachable, UNAVAILABLE),
    (ShuttingDown, UNAVAILABLE),
    (errors.Busy, UNAVAILABLE),
    (errors.HostDown, UNAVAILABLE),
)


def outcome_for(exc: errors.HoldfastError) -> Outcome:
    for kind, outcome in ERROR_TABLE:
        if isinstance(exc, kind):
            return outcome
    return INTERNAL


def http_status_for(exc: errors.HoldfastError) -> int:
    return outcome_for(exc).http_status


def exit_code_for(exc: errors.HoldfastError) -> int:
    return outcome_for(exc).exit_code
