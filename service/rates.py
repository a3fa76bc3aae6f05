"""A job's transfer rate and time left, from what its record stores.

A job records ``bytes_done``, when those bytes began to flow
(``transfer_started_at``) and when they were last counted (``progress_at``);
the rate is the average over that span, the ETA the bytes left at that rate.
Pure functions of those values, so ``GET /v1/jobs/{id}``, the SSE stream and
the CLI show the same figures from any process that reads the catalog.
"""

from __future__ import annotations

from datetime import datetime


def transfer_rate(bytes_done: int | None, since: datetime | None,
                  at: datetime | None) -> float | None:
    """Bytes per second from ``since`` to ``at``; None before any byte was
    counted or while the span is not yet positive."""
    if bytes_done is None or since is None or at is None:
        return None
    seconds = (at - since).total_seconds()
    if seconds <= 0:
        return None
    return bytes_done / seconds


def eta_seconds(bytes_done: int | None, bytes_total: int | None,
                rate: float | None) -> float | None:
    """Seconds until ``bytes_total`` at ``rate``; None without a total or a
    rate, or once the count has passed the total (an estimate that was low:
    how much more is unknown)."""
    if bytes_done is None or bytes_total is None or rate is None or rate <= 0:
        return None
    if bytes_done > bytes_total:
        return None
    return (bytes_total - bytes_done) / rate
