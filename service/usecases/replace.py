"""Use cases of swap-in rollback: check a ``replace``, swap the restored container in, undo.

A restore with ``replace=NAME`` is an ordinary restore (:mod:`service.usecases.restores`)
into a staging container; these functions add what is particular to it, in
the order of :mod:`restore.swap`: :func:`check_replace` reads the container
being replaced and refuses before anything is written; :func:`swap_in` applies
the swap's steps once the staging container is ready and loaded, rolling back
the steps done if one fails (the old container gets its name back and is
started again) and then removing the staging container and its volumes;
:func:`undo_replace` swaps the newest ``NAME-replaced-<time>`` back in,
setting the current container aside as ``NAME-undone-<time>``. Containers are
set aside, never removed: they keep their volumes and whatever was written to
them, and ``docker rm -v`` removes them when they are no longer wanted.

A replace (and an undo) holds the gate of the instance replaced from its start
to its end (:func:`claim_instance`, :func:`holding_instance`), so no backup of
it runs while its container is stopped or renamed; a cancel is seen before
each swap step and rolls back as a failed step does; and
:func:`remove_staging_leftovers` (start-up recovery) removes the labelled
staging containers of replaces whose run ended without them being removed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from backup.cancel import raise_if_cancelled
from backup.engines import Engine, get_engine
from backup.engines.detect import BINARY_HINTS, detect_engine
from backup.errors import (
    Cancelled,
    Conflict,
    HoldfastError,
    NotFound,
    RestoreFailed,
    VolumeInUse,
)
from backup.labels import PREFIX, instance_name
from backup.names import check_container_name, shown
from backup.types import DatabaseContainer, utcnow
from restore.planner import RestorePlan
from restore.runner import wait_until_ready
from restore.swap import (
    NEW,
    Replacement,
    StagingMark,
    Step,
    SwapTarget,
    check_target,
    final_spec,
    is_staging,
    mark_staging,
    marked_alike,
    replaced_name,
    replaced_of,
    rollback,
    staging_mark,
    stamp,
    swap_steps,
    undo_steps,
    undone_name,
)
from service.bootstrap import Services
from service.ports import SCOPE_LABEL, in_scope
from service.runs import current_runner, runner_alive
from service.usecases.backups import refuse_if_running_elsewhere

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Swapped:
    """What a swap did: the new container under the old name, and where the old one is."""

    container: DatabaseContainer
    replaced: str
    replaced_id: str

    def to_json(self) -> dict[str, Any]:
        return {"container": self.replaced, "container_id": self.replaced_id,
                "status": "stopped"}


@dataclass(frozen=True)
class UndoneReplace:
    """What an undo did: the container back under ``container``, and where the
    one it displaced is kept (None if there was none)."""

    container: str
    container_id: str
    was: str
    set_aside: str | None
    set_aside_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {"container": self.container, "container_id": self.container_id,
                "restored_from": self.was,
                "set_aside": None if self.set_aside is None else {
                    "container": self.set_aside, "container_id": self.set_aside_id,
                    "status": "stopped"}}


# --- checks ------------------------------------------------------------------------


def read_target(svc: Services, name: str) -> tuple[SwapTarget, DatabaseContainer]:
    """The container called ``name`` as a swap sees it; :class:`NotFound` (404)
    with one line if there is none."""
    try:
        container = svc.docker.inspect(name)
    except NotFound:
        raise NotFound(f"no container named {shown(name)} to replace; 'docker ps -a' "
                       "lists the containers") from None
    if container.name != name:  # the engine took it as an id (prefix)
        raise NotFound(f"no container named {shown(name)} to replace; name it, not its id")
    own_env = {k: v for k, v in container.env.items() if container.image_env.get(k) != v}
    target = SwapTarget(id=container.id, name=container.name, running=container.running,
                        env=own_env, labels=dict(container.labels),
                        settings=svc.docker.container_settings(container.id))
    return target, container


def engine_of(svc: Services, container: DatabaseContainer) -> str | None:
    """The engine a container runs: its ``holdfast.engine`` label, its image's
    name, or (running) the binaries in it; None if none says."""
    engine = detect_engine(container.image, container.labels.get(PREFIX + "engine") or None)
    if engine is None and container.running:
        try:
            binaries = svc.docker.binaries_present(container.id, [b for b, _ in BINARY_HINTS])
        except HoldfastError as exc:
            logger.debug("binary probe of %s failed: %s", container.name, exc)
            return None
        engine = detect_engine(container.image, None, binaries)
    return engine


def check_replace(svc: Services, name: str, *, snapshot_engine: str, snapshot_id: str,
                  at: str) -> Replacement:
    """:func:`restore.swap.check_target` on the container called ``name``, as it
    is now; nothing is written."""
    target, container = read_target(svc, name)
    check_target(name, target_engine=engine_of(svc, container), snapshot_engine=snapshot_engine,
                 snapshot_id=snapshot_id, names=svc.docker.container_names(), at=at)
    return Replacement(target=target, at=at)


# --- the instance's gate --------------------------------------------------------------

REPLACE = "replace"
"""What the gate says a replace holding an instance does (``a replace of X is already running``)."""


def replaced_instance(target: SwapTarget) -> str:
    """The instance a backup of the container replaced runs as (its
    ``holdfast.name``, compose project and service, or its name)."""
    return instance_name(target.labels, target.name)


def claim_instance(svc: Services, replacement: Replacement, holder: str) -> str:
    """Claim the gate of the instance replaced for ``holder`` (a job id), so
    no backup of it starts while its container is swapped; returns the
    instance. :class:`~service.runs.AlreadyRunning` (409, ``running``) if a
    run of it holds the gate here, or another process is backing it up."""
    instance = replaced_instance(replacement.target)
    svc.gate.claim(instance, holder, activity=REPLACE)
    try:
        refuse_if_running_elsewhere(svc, instance)
    except BaseException:
        svc.gate.release(instance, holder)
        raise
    return instance


@contextlib.contextmanager
def holding_instance(svc: Services, replacement: Replacement,
                     holder: str | None) -> Iterator[None]:
    """The block of a replace: the gate of the instance replaced is held
    through it. A job claimed it when it was submitted (``holder`` has it);
    anyone else (the CLI) claims it here and releases it after."""
    instance = replaced_instance(replacement.target)
    if holder is not None and svc.gate.holder(instance) == holder:
        yield
        return
    own = holder or f"restore-{replacement.at}"
    claim_instance(svc, replacement, own)
    try:
        yield
    finally:
        svc.gate.release(instance, own)


# --- applying steps ------------------------------------------------------------------


def _apply(svc: Services, step: Step, ids: dict[str, str], engine: Engine | None,
           cancelled: Callable[[], bool] = lambda: False) -> None:
    container_id = ids.get(step.container, step.container)
    docker = svc.docker
    if step.action == "create":
        assert step.spec is not None
        ids[NEW] = docker.create_container(step.spec).id
    elif step.action == "stop":
        docker.stop_container(container_id)
    elif step.action == "start":
        docker.start(container_id)
    elif step.action == "rename":
        docker.rename_container(container_id, step.name)
    elif step.action == "restart":
        docker.set_restart_policy(container_id, step.restart)
    elif step.action == "remove":
        docker.remove_container(container_id)
    elif engine is not None:  # wait
        wait_until_ready(engine, docker, docker, docker.inspect(container_id),
                         timeout=svc.settings.ready_timeout, cancelled=cancelled)
    elif not docker.inspect(container_id).running:
        raise RestoreFailed(f"container {container_id[:12]} stopped as it started: "
                            f"{docker.logs_tail(container_id, 5).strip()[-300:]}")


def apply_steps(svc: Services, steps: list[Step], engine: Engine | None, what: str,
                cancelled: Callable[[], bool] = lambda: False) -> dict[str, str]:
    """Apply ``steps`` in order; if one fails, apply the undos of those done
    (each tried, failures logged) and raise one line saying what failed and
    whether everything was put back. ``cancelled`` is looked at before each
    step (and while waiting for a container): a cancel is put back the same
    way and raised as :class:`~backup.errors.Cancelled`; the undos themselves
    are never cut short. Returns the ids of containers created."""
    ids: dict[str, str] = {}
    done: list[Step] = []
    for step in steps:
        try:
            raise_if_cancelled(cancelled)
        except Cancelled as exc:
            logger.warning("%s %s before %s; putting things back", what, exc, step.describe())
            undos = rollback(done)
            outcome = (_put_back(svc, undos, ids, engine) if undos else
                       "the old container was not touched")
            raise Cancelled(f"{what} {exc} before {step.describe()}; {outcome}") from exc
        try:
            _apply(svc, step, ids, engine, cancelled)
        except BaseException as exc:
            logger.warning("%s failed while %s: %s; putting things back", what,
                           step.describe(), exc)
            outcome = _put_back(svc, rollback(done, step), ids, engine)
            if not isinstance(exc, HoldfastError):
                raise  # an interrupt: put back as far as possible, then stop
            raise _amended(exc, f"{what} failed while {step.describe()}: {exc}; "
                                f"{outcome}") from exc
        done.append(step)
    return ids


def _put_back(svc: Services, undos: list[Step], ids: dict[str, str],
              engine: Engine | None) -> str:
    """Apply ``undos``, each tried (failures logged); say whether all were."""
    problems = []
    for undo in undos:
        try:
            _apply(svc, undo, ids, engine)
        except HoldfastError as again:
            logger.error("could not undo (%s): %s", undo.describe(), again)
            problems.append(f"{undo.describe()}: {again}")
    return ("everything was put back" if not problems else
            "putting it back failed: " + "; ".join(problems))


def _amended(exc: HoldfastError, text: str) -> HoldfastError:
    """``exc`` with ``text`` as its message, of the same class where that class
    takes just a message (so the status and exit code stay), else
    :class:`RestoreFailed`."""
    if type(exc).__init__ is HoldfastError.__init__:
        return type(exc)(text)
    return RestoreFailed(text)


def _engine(name: str | None) -> Engine | None:
    if name is None:
        return None
    try:
        return get_engine(name)
    except HoldfastError:
        return None


# --- the swap ---------------------------------------------------------------------------


def swap_in(svc: Services, target: SwapTarget, staging: DatabaseContainer, plan: RestorePlan,
            engine: Engine, at: str, cancelled: Callable[[], bool] = lambda: False) -> Swapped:
    """Swap the ready, loaded staging container (restored from ``plan``) in for
    ``target``. On failure, or if ``cancelled`` turns true before the last
    step, the steps done are undone, the staging container and the volumes it
    was given are removed, and the error says what was put back."""
    what = f"replace of {target.name}"
    try:
        target = _still(svc, target)
        spec = final_spec(plan, target)
        ids = apply_steps(svc, swap_steps(target, staging.id, spec, at), engine, what,
                          cancelled)
    except BaseException:
        _discard(svc, staging.id, [v for v in plan.volume_names if v not in plan.reused_volumes])
        raise
    try:  # its volumes stay: they are the new container's now
        svc.docker.remove_container(staging.id)
    except HoldfastError as exc:
        logger.warning("could not remove the staging container %s: %s", staging.name, exc)
    aside = replaced_name(target.name, at)
    logger.info("swapped %s in: the old container is kept stopped as %s", target.name, aside)
    return Swapped(container=svc.docker.inspect(ids[NEW]), replaced=aside,
                   replaced_id=target.id)


def _still(svc: Services, target: SwapTarget) -> SwapTarget:
    """``target`` as it is now, read again once the staging copy is loaded (it
    may have been stopped or changed meanwhile); :class:`Conflict` if its name
    is another container's now, or nobody's."""
    try:
        now = read_target(svc, target.name)[0]
    except NotFound:
        now = None
    if now is None or now.id != target.id:
        raise Conflict(f"container {target.name} was removed or replaced while the restore "
                       "loaded; nothing was swapped, and the restored copy is removed")
    return now


def _discard(svc: Services, container_id: str, volumes: list[str]) -> None:
    try:
        svc.docker.remove_container(container_id)
    except HoldfastError as exc:
        logger.error("could not remove the staging container %s: %s", container_id[:12], exc)
    for volume in volumes:
        try:
            svc.docker.remove_volume(volume)
        except HoldfastError as exc:
            logger.error("could not remove volume %s: %s", volume, exc)


# --- undo ----------------------------------------------------------------------------------


def undo_replace(svc: Services, name: str) -> UndoneReplace:
    """Give ``name`` back to the newest container a replace set aside
    (``NAME-replaced-<time>``) and start it; the container called ``name`` now,
    if any, is stopped and kept as ``NAME-undone-<time>`` with its volumes."""
    check_container_name(name)
    names = svc.docker.container_names()
    candidates = replaced_of(name, names)
    if not candidates:
        raise NotFound(f"no container {name}-replaced-* to swap back; a restore with "
                       f"replace {name} keeps one")
    old = svc.docker.inspect(candidates[-1])
    current = read_target(svc, name)[0] if name in names else None
    at = stamp(utcnow())
    aside = undone_name(name, at) if current is not None else None
    if aside is not None and aside in names:
        raise Conflict(f"a container named {aside} already exists; retry in a second")
    steps = undo_steps(current, old.id, old.name, name, at)
    # No backup of the instance starts while its container is swapped back.
    instance = instance_name(old.labels if current is None else current.labels, name)
    holder = f"undo-replace-{at}"
    svc.gate.claim(instance, holder, activity=REPLACE)
    try:
        refuse_if_running_elsewhere(svc, instance)
        apply_steps(svc, steps, _engine(engine_of(svc, old)), f"undo of the replace of {name}")
    finally:
        svc.gate.release(instance, holder)
    logger.info("swapped %s back in as %s%s", old.name, name,
                f"; {name} is kept stopped as {aside}" if aside else "")
    return UndoneReplace(container=name, container_id=old.id, was=old.name, set_aside=aside,
                         set_aside_id=current.id if current is not None else None)


# --- leftovers of a crash ----------------------------------------------------------------


def marked_plan(plan: RestorePlan, replacement: Replacement, job_id: str | None) -> RestorePlan:
    """The staging ``plan`` with the labels that say who made it (the job,
    this process) and for which container, and the scope of the container
    replaced, so start-up recovery can tell a leftover of a crash."""
    scope = replacement.target.labels.get(SCOPE_LABEL)
    return mark_staging(plan, StagingMark(target=replacement.target.name, job=job_id,
                                          runner=current_runner()),
                        extra={SCOPE_LABEL: scope} if scope else None)


def remove_staging_leftovers(svc: Services) -> list[str]:
    """Remove the staging containers (``NAME-restoring-<time>``) Holdfast made,
    in this scope, whose run has ended (:func:`_run_ended`), with the volumes
    created for them that no other container uses; returns their names, each
    logged. Never touched: a container without Holdfast's staging labels
    (whatever its name), one of a live run or of another catalog's job, and
    the containers a swap set aside (``-replaced-``/``-undone-``), which are no
    staging containers."""
    removed = []
    for name in sorted(n for n in svc.docker.container_names() if is_staging(n)):
        try:
            container = svc.docker.inspect(name)
        except NotFound:
            continue
        mark = staging_mark(container.name, container.labels)
        if mark is None or not in_scope(container.labels, svc.settings.scope):
            logger.info("left container %s alone: it is no staging container Holdfast made "
                        "in this scope", name)
            continue
        ended = _run_ended(svc, mark)
        if ended is None:
            continue
        try:
            svc.docker.remove_container(container.id)
        except HoldfastError as exc:
            logger.error("could not remove staging container %s (%s): %s", name, ended, exc)
            continue
        volumes = _remove_volumes_of(svc, container, mark)
        logger.warning("removed staging container %s of a replace of %s that did not finish "
                       "(%s), and %s", name, mark.target, ended,
                       f"its volume(s) {', '.join(volumes)}" if volumes else "no volume")
        removed.append(name)
    return removed


def _run_ended(svc: Services, mark: StagingMark) -> str | None:
    """Why the run that made a staging container is over, or None while it
    may go on: its job is recorded ended in this catalog (start-up recovery
    has failed the last daemon's), or, run without a job, its process is
    gone from this host. A job this catalog does not know is another
    Holdfast's, and a process on another host cannot be checked: both kept."""
    if runner_alive(mark.runner) is True:
        return None
    if mark.job is not None:
        job = svc.catalog.get_job(mark.job)
        return None if job is None or not job.ended else f"job {job.id} {job.status}"
    return f"process {mark.runner} is gone" if runner_alive(mark.runner) is False else None


def _remove_volumes_of(svc: Services, container: DatabaseContainer,
                       mark: StagingMark) -> list[str]:
    """Remove the volumes ``container`` mounted that carry the same mark (made
    for it) and that no container uses now; one a swap gave to the new
    container stays."""
    removed = []
    for mount in container.mounts:
        if mount.kind != "volume" or not mount.source:
            continue
        try:
            info = svc.docker.get_volume(mount.source)
            if info is None or not marked_alike(info.labels, mark):
                continue
            svc.docker.remove_unused_volume(mount.source)
        except VolumeInUse:
            logger.info("kept volume %s: a container uses it", mount.source)
            continue
        except HoldfastError as exc:
            logger.error("could not remove volume %s: %s", mount.source, exc)
            continue
        removed.append(mount.source)
    return removed
