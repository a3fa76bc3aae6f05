"""Verified restores, decided: names, marks and the verdict, as pure functions.

A verified restore loads a snapshot into a throwaway container on an internal
network of its own, measures it, and compares the figures with those recorded
at backup time (:mod:`backup.figures`). Everything it creates is named
``holdfast-verify-<snapshot>-<token>`` and carries :data:`VERIFICATION_LABEL`
(the snapshot) and :data:`RUNNER_LABEL` (the process), so the process can
always remove what it made, and a later start can tell another live process's
verification from the leftovers of a killed one. :func:`judge` turns the two
sets of figures (or the reason the restore itself failed) into the
:class:`Verdict` recorded on the snapshot, bounded in size whatever the
snapshot holds.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from backup.figures import Difference, Figures, compare

NAME_PREFIX = "holdfast-verify-"
VERIFICATION_LABEL = "holdfast.verification"
"""On every container, volume and network a verified restore makes: the snapshot's id."""
RUNNER_LABEL = "holdfast.verification.runner"
"""The process (``host:pid:start``, :func:`service.runs.current_runner`) that made it."""
MAX_FIGURES = 1000
MAX_DIFFERENCES = 100
PASSED = "passed"
FAILED = "failed"


def throwaway_name(snapshot_id: str, token: str | None = None) -> str:
    """The container (and network) name of one verified restore of ``snapshot_id``."""
    return f"{NAME_PREFIX}{snapshot_id}-{token or secrets.token_hex(3)}"


def marks(snapshot_id: str, runner: str, scope: str | None) -> dict[str, str]:
    """The labels a verified restore puts on what it creates (a scope's own
    daemon alone cleans up after it)."""
    labels = {VERIFICATION_LABEL: snapshot_id, RUNNER_LABEL: runner}
    if scope:
        labels["holdfast.scope"] = scope
    return labels


def runner_of(name: str, labels: Mapping[str, str]) -> str | None:
    """The runner that made a container or network called ``name`` with these
    labels, or None when it is no verification's (whatever its name says)."""
    if not name.startswith(NAME_PREFIX) or VERIFICATION_LABEL not in labels:
        return None
    return labels.get(RUNNER_LABEL) or None


@dataclass(frozen=True)
class Verdict:
    """What one verified restore found, as recorded on the snapshot."""

    result: str
    reason: str | None = None
    exact: bool | None = None
    method: str | None = None
    figures: Mapping[str, int | str] = field(default_factory=dict)
    truncated: bool = False
    differences: tuple[Difference, ...] = ()
    job_id: str | None = None
    seconds: float | None = None

    @property
    def passed(self) -> bool:
        return self.result == PASSED

    def to_json(self) -> dict[str, Any]:
        return {
            "result": self.result, "reason": self.reason, "job_id": self.job_id,
            "seconds": None if self.seconds is None else round(self.seconds, 3),
            "exact": self.exact, "method": self.method, "figures": dict(self.figures),
            "truncated": self.truncated,
            "differences": [{"name": d.name, "recorded": d.recorded, "measured": d.measured}
                            for d in self.differences],
        }


def judge(recorded: Mapping[str, Any] | None, measured: Figures) -> Verdict:
    """The verdict on a copy that restored and measured ``measured``, against
    the manifest's ``recorded`` figures (JSON; None for a snapshot taken before
    figures were recorded, which then passes on having restored and been
    measured, and says so)."""
    shown, truncated = _bounded(measured.values)
    if recorded is None:
        return Verdict(result=PASSED, exact=None, figures=shown, truncated=truncated,
                       reason=None, method="no figures were recorded at backup time: "
                       "checked that it restores and answers, not what it holds")
    before = Figures.from_json(recorded)
    differences = compare(before, measured)
    exact = before.exact and measured.exact
    if not differences:
        return Verdict(result=PASSED, exact=exact, method=before.method, figures=shown,
                       truncated=truncated)
    count = len(differences)
    more = f" (and {count - 1} more)" if count > 1 else ""
    return Verdict(result=FAILED, reason=differences[0].describe() + more, exact=exact,
                   method=before.method, figures=shown, truncated=truncated,
                   differences=tuple(differences[:MAX_DIFFERENCES]))


def failed_restore(reason: str) -> Verdict:
    """The verdict on a snapshot that did not restore (corrupt, not ready, a
    load that failed): the reason is what the restore said."""
    return Verdict(result=FAILED, reason=f"the restore failed: {reason}")


def _bounded(values: Mapping[str, int | str]) -> tuple[dict[str, int | str], bool]:
    names = sorted(values)
    return {name: values[name] for name in names[:MAX_FIGURES]}, len(names) > MAX_FIGURES
