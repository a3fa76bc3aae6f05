"""Swap-in rollback: the decisions and the steps of replacing a container by a restore.

A restore with ``replace`` loads the snapshot into a fresh *staging* container
(``NAME-restoring-<time>``, on no network of the old one and publishing no
port, so nothing reaches a half-loaded copy), and only once it is ready and
loaded swaps it in: the old container is stopped, its restart policy cleared
(so a Docker restart never brings it back beside the new one) and renamed
aside as ``NAME-replaced-<time>``, kept with its volumes; a container is
created under the old name from the staging container's volumes with the old
networks and aliases, published ports, labels, restart policy and
environment (port bindings cannot change on an existing container, so it is
created anew), then started and waited for. ``--undo-replace`` is the same
kind of swap backwards: the current container is set aside as
``NAME-undone-<time>`` (never removed: it may hold writes made since) and
the newest replaced one gets its name back.

Everything here is pure ("decide, then apply"): names, the checks a replace
request must pass, the new container's spec, and the list of
:class:`Step` each carrying the step that undoes it, so whoever applies them
(:mod:`service.usecases.replace`) rolls back a failure by applying the undos
of the steps done, newest first. A staging container and the volumes made for
it carry a :class:`StagingMark` (``holdfast.staging-for``, ``-job``,
``-runner``), so a leftover of a crash is known by its labels, not its name.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from backup.errors import Conflict, InvalidInput, UnsupportedEngine
from backup.names import check_container_name, shown
from backup.ports import ContainerSpec, PublishedPort
from restore.copies import RestoreOptions
from restore.planner import RESTORED_FROM_LABEL, SOURCE_INSTANCE_LABEL, RestorePlan

STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
"""The ``<time>`` in the names a swap gives: UTC, compact (``20261203T054500Z``)."""
_STAMP = r"[0-9]{8}T[0-9]{6}Z"
_SET_ASIDE = re.compile(rf".+-(?:replaced|undone)-{_STAMP}")
_STAGING = re.compile(rf".+-restoring-{_STAMP}")
_HOLDFAST_OWN = (RESTORED_FROM_LABEL, SOURCE_INSTANCE_LABEL)

STAGING_FOR_LABEL = "holdfast.staging-for"
"""On a staging container and the volumes created for it: the container it
is swapped in for. With :data:`STAGING_JOB_LABEL` (the restore job's id, when
a job runs it) and :data:`STAGING_RUNNER_LABEL` (the process, ``host:pid:start``),
it is how start-up recovery knows a leftover is Holdfast's (never by name alone)."""
STAGING_JOB_LABEL = "holdfast.staging-job"
STAGING_RUNNER_LABEL = "holdfast.staging-runner"
_STAGING_MARKS = (STAGING_FOR_LABEL, STAGING_JOB_LABEL, STAGING_RUNNER_LABEL)


@dataclass(frozen=True)
class RestartPolicy:
    """Docker's restart policy: ``no``, ``always``, ``unless-stopped`` or
    ``on-failure`` (with at most ``retries`` restarts)."""

    name: str = "no"
    retries: int = 0

    @property
    def restarts(self) -> bool:
        return self.name not in ("", "no")


NO_RESTART = RestartPolicy()


@dataclass(frozen=True)
class ContainerSettings:
    """What a swap carries over that a :class:`~backup.types.DatabaseContainer`
    does not say: networks with the aliases given there (not the container's
    own name or short id), the published ports as configured (a port the
    engine chose is pinned to the one it had, so the address stays), and the
    restart policy."""

    networks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    published: tuple[PublishedPort, ...] = ()
    restart: RestartPolicy = NO_RESTART


@dataclass(frozen=True)
class SwapTarget:
    """The container being replaced, as it is before anything is touched."""

    id: str
    name: str
    running: bool
    env: Mapping[str, str]
    """Its own environment: the variables its image does not set to the same value."""
    labels: Mapping[str, str]
    settings: ContainerSettings


@dataclass(frozen=True)
class Replacement:
    """A restore's ``replace``, checked: the container to replace, and the
    ``<time>`` in the names of this swap."""

    target: SwapTarget
    at: str


# --- names ---------------------------------------------------------------------------


def stamp(now: datetime) -> str:
    return now.strftime(STAMP_FORMAT)


def staging_name(name: str, at: str) -> str:
    return f"{name}-restoring-{at}"


def replaced_name(name: str, at: str) -> str:
    return f"{name}-replaced-{at}"


def undone_name(name: str, at: str) -> str:
    return f"{name}-undone-{at}"


def volume_base(name: str, at: str) -> str:
    """The name the staging restore's volumes are planned under (``NAME-<time>-data``):
    they become the new container's, so they do not say "restoring"."""
    return f"{name}-{at}"


def is_set_aside(name: str) -> bool:
    """Whether ``name`` is one a swap gives the container it keeps aside
    (``-replaced-<time>``, ``-undone-<time>``): such a container is no backup
    source, whatever its labels say (they cannot be changed on a container)."""
    return _SET_ASIDE.fullmatch(name) is not None


def is_staging(name: str) -> bool:
    return _STAGING.fullmatch(name) is not None


def replaced_of(name: str, names: Collection[str]) -> list[str]:
    """The containers a replace of ``name`` set aside, oldest first."""
    pattern = re.compile(rf"{re.escape(name)}-replaced-({_STAMP})")
    return sorted((n for n in names if pattern.fullmatch(n)),
                  key=lambda n: n.rsplit("-", 1)[1])


# --- checks ----------------------------------------------------------------------------


def check_replace_request(replace_name: str, name: str | None, *, force: bool,
                          options: RestoreOptions | None) -> None:
    """Raise :class:`InvalidInput` with one line for what contradicts a replace
    of ``replace_name``: another ``name``, or options that choose what the old
    container's settings decide (labels may be added)."""
    check_container_name(replace_name)
    if name is not None and name != replace_name:
        raise InvalidInput(f"replace keeps the container's name {shown(replace_name)}; "
                           f"leave out name (it was {shown(name)})")
    given = options or RestoreOptions()
    chosen = [what for what, value in (("network", given.network), ("alias", given.alias),
                                       ("publish", given.publish), ("ttl", given.ttl))
              if value is not None]
    if force:
        chosen.append("force")
    if chosen:
        raise InvalidInput(f"replace takes the networks, aliases and ports of "
                           f"{shown(replace_name)} and never expires; leave out "
                           f"{', '.join(chosen)}")


def check_target(target: str, *, target_engine: str | None, snapshot_engine: str,
                 snapshot_id: str, names: Collection[str], at: str) -> None:
    """What refuses a replace of container ``target`` before anything is
    written: a container a swap set aside or is staging, an engine other than
    the snapshot's (or one that cannot be told), a replace of it in progress,
    or names the swap needs taken."""
    if is_set_aside(target) or is_staging(target):
        raise InvalidInput(f"{shown(target)} is a container a replace set aside; replace "
                           "the container in use, or swap back with --undo-replace NAME")
    if target_engine is None:
        raise InvalidInput(f"cannot tell which engine container {shown(target)} runs; label "
                           f"it holdfast.engine={snapshot_engine} to replace it")
    if target_engine != snapshot_engine:
        raise UnsupportedEngine(f"snapshot {snapshot_id} is a {snapshot_engine} snapshot and "
                                f"container {shown(target)} runs {target_engine}; replace a "
                                f"{snapshot_engine} container")
    staging = re.compile(rf"{re.escape(target)}-restoring-{_STAMP}")
    busy = sorted(n for n in names if staging.fullmatch(n))
    if busy:
        raise Conflict(f"a replace of {target} is in progress (container {busy[0]}); wait "
                       f"for its job to end, or, if none runs, docker rm -fv {busy[0]}")
    for needed in (staging_name(target, at), replaced_name(target, at)):
        check_container_name(needed)
        if needed in names:
            raise Conflict(f"a container named {needed} already exists; retry in a second")


# --- the new container -----------------------------------------------------------------


def staging_plan(plan: RestorePlan, target: str, at: str) -> RestorePlan:
    """``plan`` (made for :func:`volume_base`) as the staging container: named
    ``NAME-restoring-<time>``, on the engine's default network only, publishing
    nothing."""
    return replace(plan, container=replace(
        plan.container, name=staging_name(target, at), networks=(), aliases={},
        published=()))


@dataclass(frozen=True)
class StagingMark:
    """Who made a staging container: the container it is for, the job (None
    for a CLI run) and the process."""

    target: str
    job: str | None
    runner: str | None

    def labels(self) -> dict[str, str]:
        marks = {STAGING_FOR_LABEL: self.target, STAGING_JOB_LABEL: self.job,
                 STAGING_RUNNER_LABEL: self.runner}
        return {key: value for key, value in marks.items() if value}


def mark_staging(plan: RestorePlan, mark: StagingMark,
                 extra: Mapping[str, str] | None = None) -> RestorePlan:
    """``plan`` (a :func:`staging_plan`) with ``mark``'s labels on the
    container and on every volume it creates (a volume's labels cannot change
    later, so they stay on the new container's volumes after the swap), and
    ``extra`` labels on the container."""
    marks = mark.labels()
    labels = {**plan.container.labels, **(extra or {}), **marks}
    return replace(plan, container=replace(plan.container, labels=labels),
                   volumes=tuple(replace(v, labels={**v.labels, **marks})
                                 for v in plan.volumes))


def staging_mark(name: str, labels: Mapping[str, str]) -> StagingMark | None:
    """The mark on a container called ``name`` if it is a staging container
    Holdfast made: named ``NAME-restoring-<time>`` and labelled
    ``holdfast.staging-for=NAME`` with the job or the process that made it;
    None otherwise (its name alone says nothing)."""
    target = labels.get(STAGING_FOR_LABEL, "")
    job, runner = labels.get(STAGING_JOB_LABEL) or None, labels.get(STAGING_RUNNER_LABEL) or None
    if not target or not (job or runner) or not is_staging(name) or \
            not re.fullmatch(rf"{re.escape(target)}-restoring-{_STAMP}", name):
        return None
    return StagingMark(target=target, job=job, runner=runner)


def marked_alike(labels: Mapping[str, str], mark: StagingMark) -> bool:
    """Whether a volume's ``labels`` say it was created for the staging
    container ``mark`` is on (the same container, job and process)."""
    return {k: v for k, v in labels.items() if k in _STAGING_MARKS} == mark.labels()


def new_env(planned: Mapping[str, str], own: Mapping[str, str]) -> dict[str, str]:
    """The restored container's environment: the snapshot's (what the data was
    loaded with, secrets included), with the old container's own variables over
    it, so what its operator set (a rotated password, ``TZ``, settings) stays;
    variables of the old image are not carried onto the new one."""
    return {**planned, **own}


def final_spec(plan: RestorePlan, target: SwapTarget) -> ContainerSpec:
    """The container created under the old name: the staging container's image,
    command and volumes; the old one's networks (in its order) and aliases,
    published ports and labels, with Holdfast's restored-from labels for this
    snapshot (not the staging marks: it is no staging container); the
    environment of :func:`new_env`."""
    staged = plan.container
    own = {k: v for k, v in staged.labels.items() if k in _HOLDFAST_OWN}
    extra = {k: v for k, v in staged.labels.items()
             if k not in _HOLDFAST_OWN and k not in _STAGING_MARKS}
    networks = tuple(target.settings.networks)
    return ContainerSpec(
        name=target.name, image=staged.image, env=new_env(staged.env, target.env),
        volumes=dict(staged.volumes), labels={**target.labels, **extra, **own},
        networks=networks, command=staged.command,
        aliases={n: a for n, a in target.settings.networks.items() if a},
        published=target.settings.published)


# --- steps -----------------------------------------------------------------------------

NEW = "<new>"
"""Stands for the id of the container a swap creates, known once it exists."""

Action = Literal["stop", "start", "rename", "restart", "create", "remove", "wait"]


@dataclass(frozen=True)
class Step:
    """One change to the engine. ``container`` is an id (or :data:`NEW`);
    ``name`` is the new name of a rename; ``restart`` the policy a ``restart``
    step sets; ``spec`` what ``create`` creates; ``undo`` the step that
    reverses this one, if it needs one (a later ``remove`` of the new
    container reverses everything done to it)."""

    action: Action
    container: str
    name: str = ""
    restart: RestartPolicy = NO_RESTART
    spec: ContainerSpec | None = None
    undo: Step | None = None

    def describe(self) -> str:
        what = "the new container" if self.container == NEW else f"container {self.container[:12]}"
        if self.action == "rename":
            return f"renaming {what} to {self.name}"
        if self.action == "restart":
            return f"setting the restart policy of {what} to {self.restart.name}"
        if self.action == "create":
            return f"creating {self.spec.name if self.spec else what}"
        if self.action == "wait":
            return f"waiting for {what} to accept connections"
        verbs = {"stop": "stopping", "start": "starting", "remove": "removing"}
        return f"{verbs[self.action]} {what}"


def _set_aside(container: SwapTarget, aside: str) -> list[Step]:
    """Stop ``container``, clear its restart policy, rename it ``aside``; each undone."""
    steps = []
    if container.running:
        steps.append(Step("stop", container.id, undo=Step("start", container.id)))
    policy = container.settings.restart
    if policy.restarts:
        steps.append(Step("restart", container.id, restart=NO_RESTART,
                          undo=Step("restart", container.id, restart=policy)))
    steps.append(Step("rename", container.id, name=aside,
                      undo=Step("rename", container.id, name=container.name)))
    return steps


def swap_steps(target: SwapTarget, staging_id: str, spec: ContainerSpec,
               at: str) -> list[Step]:
    """The swap, once the staging container ``staging_id`` is ready and loaded:
    stop it (a clean shut-down of the loaded data), set the old container aside
    as ``NAME-replaced-<time>``, create ``spec`` under the old name with the old
    restart policy, start it and wait for it. Removing the staging container
    (its volumes stay: they are the new one's) comes after, and is no part of
    the swap."""
    steps = [Step("stop", staging_id), *_set_aside(target, replaced_name(target.name, at)),
             Step("create", NEW, spec=spec, undo=Step("remove", NEW))]
    if target.settings.restart.restarts:
        steps.append(Step("restart", NEW, restart=target.settings.restart))
    return [*steps, Step("start", NEW), Step("wait", NEW)]


def undo_steps(current: SwapTarget | None, old_id: str, old_name: str, name: str,
               at: str) -> list[Step]:
    """Swap back: set the current container called ``name`` (if there is one)
    aside as ``NAME-undone-<time>``, give the replaced container ``old_id``
    (now called ``old_name``) the name and the current one's restart policy (a
    swap cleared its own), start it and wait for it."""
    steps = _set_aside(current, undone_name(name, at)) if current is not None else []
    policy = current.settings.restart if current is not None else NO_RESTART
    if policy.restarts:
        steps.append(Step("restart", old_id, restart=policy,
                          undo=Step("restart", old_id, restart=NO_RESTART)))
    return [*steps, Step("rename", old_id, name=name,
                         undo=Step("rename", old_id, name=old_name)),
            Step("start", old_id, undo=Step("stop", old_id)), Step("wait", old_id)]


def rollback(done: Sequence[Step], failed: Step | None = None) -> list[Step]:
    """The steps that undo ``done``, newest first. A ``stop`` that failed may
    have stopped its container all the same, so it is undone too."""
    undos = [step.undo for step in reversed(done) if step.undo is not None]
    if failed is not None and failed.action == "stop" and failed.undo is not None:
        undos.insert(0, failed.undo)
    return undos
