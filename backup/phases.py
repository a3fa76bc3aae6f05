"""The phases a backup or restore goes through, as jobs report them.

:func:`backup.pipeline.take_snapshot` and :func:`restore.runner.restore_snapshot`
call a :data:`PhaseCallback` with each phase as they enter it, beside the
byte-count :data:`~backup.streams.ProgressCallback`; a job records both. The
names are part of the API (a job's ``phase``). What each means in the code:

- ``queued``: the job waits for a worker; nothing has run.
- ``dumping``: a backup streams the dump through compression into the target
  (one pass: the upload of the data happens while the dump runs).
- ``uploading``: the dump has ended; the target commits the data object and
  the manifest is written beside it.
- ``creating``: a restore creates its volumes and container.
- ``waiting-for-ready``: the restored container starts until its server
  accepts connections.
- ``loading``: the stored data streams into the container (its sha256 and
  size are checked as it passes).
- ``verifying``: after a failed load, the stored object is read again to tell
  a corrupt snapshot from a load that failed for another reason.
- ``swapping``: a restore with ``replace``, loaded and ready, is swapped in for
  the old container (:mod:`restore.swap`): the old one is stopped and set
  aside, the new one created under its name, started and waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Phase(StrEnum):
    QUEUED = "queued"
    DUMPING = "dumping"
    UPLOADING = "uploading"
    CREATING = "creating"
    WAITING_FOR_READY = "waiting-for-ready"
    LOADING = "loading"
    VERIFYING = "verifying"
    SWAPPING = "swapping"


PhaseCallback = Callable[[Phase], None]
"""Called with a phase as the operation enters it (never twice in a row for one)."""


def no_phases(phase: Phase) -> None:
    """The default :data:`PhaseCallback`: nobody is told."""
