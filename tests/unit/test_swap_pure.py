"""restore.swap, pure: the names a swap gives, the checks of a replace, the new
container's spec, and the steps: whatever step fails, applying the undos of those
done gives back the engine as it was, and no two containers ever share a name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import Conflict, InvalidInput, InvalidName, UnsupportedEngine
from backup.ports import ContainerSpec, PublishedPort
from restore.copies import RestoreOptions
from restore.planner import RestorePlan
from restore.swap import (
    NEW,
    NO_RESTART,
    ContainerSettings,
    RestartPolicy,
    Step,
    SwapTarget,
    check_replace_request,
    check_target,
    final_spec,
    is_set_aside,
    is_staging,
    replaced_name,
    replaced_of,
    rollback,
    staging_name,
    staging_plan,
    stamp,
    swap_steps,
    undo_steps,
    undone_name,
)

AT = stamp(datetime(2026, 12, 3, 5, 45, 0, tzinfo=UTC))


def _target(running: bool = True, restart: RestartPolicy = NO_RESTART) -> SwapTarget:
    return SwapTarget(
        id="old0000000001", name="prod-db", running=running,
        env={"TZ": "Europe/Paris", "POSTGRES_PASSWORD": "rotated"},
        labels={"holdfast.enable": "true", "com.docker.compose.service": "db"},
        settings=ContainerSettings(
            networks={"app-net": ("db", "postgres"), "bridge": ()},
            published=(PublishedPort(5432, 15432, ""),), restart=restart))


def _plan() -> RestorePlan:
    return RestorePlan(snapshot_id="S1", container=ContainerSpec(
        name=f"prod-db-{AT}", image="postgres:15",
        env={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "old", "PGDATA": "/x"},
        volumes={f"prod-db-{AT}-data": "/var/lib/postgresql/data"},
        labels={"holdfast.restored-from": "S1", "holdfast.source-instance": "prod-db",
                "team": "qa"},
        networks=("app-net",), aliases={"app-net": ("x",)},
        published=(PublishedPort(5432, 0),), command=("postgres", "-c", "fsync=on")),
        volumes=())


# --- names -------------------------------------------------------------------------------


def test_names_carry_the_compact_utc_time() -> None:
    assert AT == "20261203T054500Z"
    assert replaced_name("prod-db", AT) == "prod-db-replaced-20261203T054500Z"
    assert undone_name("prod-db", AT) == "prod-db-undone-20261203T054500Z"
    assert staging_name("prod-db", AT) == "prod-db-restoring-20261203T054500Z"


@given(st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,40}", fullmatch=True),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 1, 1)))
def test_set_aside_names_are_recognised_and_the_name_itself_is_not(name: str,
                                                                   when: datetime) -> None:
    at = stamp(when)
    assert is_set_aside(replaced_name(name, at)) and is_set_aside(undone_name(name, at))
    assert is_staging(staging_name(name, at)) and not is_set_aside(staging_name(name, at))
    assert not is_set_aside(name) or name.rsplit("-", 2)[-2] in ("replaced", "undone")
    assert replaced_of(name, {replaced_name(name, at), name, undone_name(name, at),
                              replaced_name(name + "x", at)}) == [replaced_name(name, at)]


def test_replaced_of_sorts_by_time_oldest_first() -> None:
    names = {"db-replaced-20260101T000000Z", "db-replaced-20250101T000000Z",
             "db-replaced-junk", "other-replaced-20270101T000000Z"}
    assert replaced_of("db", names) == ["db-replaced-20250101T000000Z",
                                        "db-replaced-20260101T000000Z"]


# --- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "options", "force", "words"), [
    ("other", None, False, "leave out name (it was 'other')"),
    (None, RestoreOptions(network="n", alias="a"), False, "leave out network, alias"),
    (None, RestoreOptions(publish=0), False, "leave out publish"),
    (None, RestoreOptions(ttl="1h"), True, "leave out ttl, force"),
])
def test_what_a_replace_decides_itself_is_refused(name: str | None,
                                                  options: RestoreOptions | None,
                                                  force: bool, words: str) -> None:
    with pytest.raises(InvalidInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        check_replace_request("prod-db", name, force=force, options=options)


def test_labels_and_the_same_name_go_with_a_replace() -> None:
    check_replace_request("prod-db", "prod-db", force=False,
                          options=RestoreOptions(labels={"team": "qa"}))
    with pytest.raises(InvalidName):
        check_replace_request("bad name", None, force=False, options=None)


def _check(target: str = "prod-db", engine: str | None = "postgres",
           names: frozenset[str] = frozenset()) -> None:
    check_target(target, target_engine=engine, snapshot_engine="postgres", snapshot_id="S1",
                 names=names | {target}, at=AT)


def test_target_checks() -> None:
    _check()
    with pytest.raises(UnsupportedEngine, match="S1 is a postgres snapshot and container "
                                                "'prod-db' runs redis"):
        _check(engine="redis")
    with pytest.raises(InvalidInput, match=r"label it holdfast\.engine=postgres"):
        _check(engine=None)
    with pytest.raises(InvalidInput, match="set aside"):
        _check(target=replaced_name("prod-db", "20250101T000000Z"))
    with pytest.raises(Conflict, match="in progress"):
        _check(names=frozenset({staging_name("prod-db", "20250101T000000Z")}))
    with pytest.raises(Conflict, match="already exists"):
        _check(names=frozenset({replaced_name("prod-db", AT)}))
    with pytest.raises(InvalidName):
        _check(target="d" * 110)  # its -replaced-<time> name would pass Docker's 128


# --- the new container ----------------------------------------------------------------------


def test_the_staging_container_joins_nothing_and_publishes_nothing() -> None:
    staged = staging_plan(_plan(), "prod-db", AT).container
    assert staged.name == f"prod-db-restoring-{AT}"
    assert (staged.networks, staged.aliases, staged.published) == ((), {}, ())
    assert staged.volumes == _plan().container.volumes


def test_the_new_container_takes_the_old_ones_settings() -> None:
    spec = final_spec(staging_plan(_plan(), "prod-db", AT), _target())
    assert spec.name == "prod-db"
    assert (spec.image, spec.command) == ("postgres:15", ("postgres", "-c", "fsync=on"))
    assert spec.volumes == {f"prod-db-{AT}-data": "/var/lib/postgresql/data"}
    assert spec.networks == ("app-net", "bridge")
    assert spec.aliases == {"app-net": ("db", "postgres")}
    assert spec.published == (PublishedPort(5432, 15432, ""),)
    assert spec.labels == {"holdfast.enable": "true", "com.docker.compose.service": "db",
                           "team": "qa", "holdfast.restored-from": "S1",
                           "holdfast.source-instance": "prod-db"}
    # the snapshot's environment, with what the old container's operator set over it
    assert spec.env == {"POSTGRES_USER": "app", "POSTGRES_PASSWORD": "rotated", "PGDATA": "/x",
                        "TZ": "Europe/Paris"}


# --- the steps, on a model engine ----------------------------------------------------------


class Refused(Exception):
    pass


@dataclass
class Model:
    """Containers by id: name, running, restart policy; names unique, as Docker's."""

    containers: dict[str, tuple[str, bool, RestartPolicy]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def apply(self, step: Step) -> None:
        cid = self.ids.get(step.container, step.container)
        if step.action == "create":
            assert step.spec is not None
            self._free(step.spec.name)
            self.ids[NEW] = "new"
            self.containers["new"] = (step.spec.name, False, NO_RESTART)
            return
        if step.action == "remove":
            del self.containers[cid]
            return
        name, running, restart = self.containers[cid]
        if step.action == "stop":
            running = False
        elif step.action == "start":
            running = True
        elif step.action == "rename":
            self._free(step.name, cid)
            name = step.name
        elif step.action == "restart":
            restart = step.restart
        elif not running:  # wait
            raise Refused("not running")
        self.containers[cid] = (name, running, restart)

    def _free(self, name: str, mine: str | None = None) -> None:
        if any(n == name and i != mine for i, (n, _, _) in self.containers.items()):
            raise Refused(f"name {name} taken")


def _run(model: Model, steps: list[Step], fail_at: int | None) -> bool:
    """Apply ``steps``, refusing the one at ``fail_at``; on failure apply the
    rollback. True if every step was applied."""
    done: list[Step] = []
    for index, step in enumerate(steps):
        if index == fail_at:
            for undo in rollback(done, step):
                model.apply(undo)
            return False
        model.apply(step)
        done.append(step)
    return True


POLICIES = st.sampled_from([NO_RESTART, RestartPolicy("always"), RestartPolicy("on-failure", 3)])


@given(running=st.booleans(), restart=POLICIES, fail_at=st.one_of(st.none(), st.integers(0, 9)))
def test_any_failed_swap_step_gives_the_old_container_back(running: bool, restart: RestartPolicy,
                                                         fail_at: int | None) -> None:
    target = _target(running, restart)
    spec = final_spec(staging_plan(_plan(), "prod-db", AT), target)
    model = Model({target.id: ("prod-db", running, restart),
                   "staging": (staging_name("prod-db", AT), True, NO_RESTART)})
    steps = swap_steps(target, "staging", spec, AT)
    swapped = _run(model, steps, fail_at)
    state = {cid: c for cid, c in model.containers.items() if cid != "staging"}
    if swapped:
        assert state == {target.id: (replaced_name("prod-db", AT), False, NO_RESTART),
                         "new": ("prod-db", True, restart)}
    else:
        assert state == {target.id: ("prod-db", running, restart)}


@given(current=st.booleans(), running=st.booleans(), restart=POLICIES,
       fail_at=st.one_of(st.none(), st.integers(0, 8)))
def test_any_failed_undo_step_gives_the_current_container_back(
        current: bool, running: bool, restart: RestartPolicy, fail_at: int | None) -> None:
    old = replaced_name("prod-db", "20250101T000000Z")
    model = Model({"old": (old, False, NO_RESTART)})
    now = None
    if current:
        now = SwapTarget(id="cur", name="prod-db", running=running, env={}, labels={},
                         settings=ContainerSettings(restart=restart))
        model.containers["cur"] = ("prod-db", running, restart)
    before = dict(model.containers)
    undone = _run(model, undo_steps(now, "old", old, "prod-db", AT), fail_at)
    if not undone:
        assert model.containers == before
    elif current:
        assert model.containers == {"old": ("prod-db", True, restart),
                                    "cur": (undone_name("prod-db", AT), False, NO_RESTART)}
    else:
        assert model.containers == {"old": ("prod-db", True, NO_RESTART)}


def test_a_stop_that_failed_is_undone_too() -> None:
    stop = Step("stop", "x", undo=Step("start", "x"))
    rename = Step("rename", "y", name="b", undo=Step("rename", "y", name="a"))
    assert rollback([rename], stop) == [Step("start", "x"), rename.undo]
    assert rollback([stop], rename) == [Step("start", "x")]
