"""Instances: how containers are classified, chosen, listed, recorded and given a policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import DockerUnavailable, InstanceNotFound, InvalidLabels
from backup.labels import InstancePolicy
from backup.types import DatabaseContainer, SnapshotStatus
from service.records import InstanceRecord
from service.usecases import backups, instances
from service.usecases.instances import Instance
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, make_snapshot


def _view(world: FakeWorld, name: str) -> instances.InstanceView:
    return next(v for v in instances.list_instances(world.services) if v.name == name)


# --- classify ----------------------------------------------------------------------


def test_a_container_without_enable_true_is_not_an_instance(world: FakeWorld) -> None:
    container = world.docker.add_container("app", labels={"holdfast.enable": "false"},
                                           image="postgres:16")
    assert instances.classify(world.services, world.docker.inspect(container.id)) is None


def test_the_engine_label_wins_over_the_image(world: FakeWorld) -> None:
    container = world.docker.add_container(
        "cache", image="postgres:16",
        labels={"holdfast.enable": "true", "holdfast.engine": "redis"})
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and found.engine == "redis" and found.errors == ()


def test_the_image_name_tells_the_engine(world: FakeWorld) -> None:
    container = world.docker.add_container("pg", image="bitnami/postgresql:16",
                                           labels={"holdfast.enable": "true"})
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and found.engine == "postgres"


def test_binaries_tell_the_engine_when_the_image_does_not(world: FakeWorld) -> None:
    container = world.docker.add_container("db", image="acme/app:3",
                                           labels={"holdfast.enable": "true"},
                                           binaries=["mariadb-dump", "sh"])
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and found.engine == "mariadb" and found.errors == ()


def test_a_stopped_container_is_not_probed_for_binaries(world: FakeWorld) -> None:
    container = world.docker.add_container("db", image="acme/app:3", running=False,
                                           labels={"holdfast.enable": "true"},
                                           binaries=["pg_dump"])
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and found.engine is None


def test_an_undetectable_engine_is_an_error_naming_the_label(world: FakeWorld) -> None:
    container = world.docker.add_container("db", image="acme/app:3",
                                           labels={"holdfast.enable": "true"})
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and found.engine is None
    assert len(found.errors) == 1
    assert "cannot tell the engine" in found.errors[0]
    assert "holdfast.engine label" in found.errors[0]


def test_a_failing_binary_probe_leaves_the_engine_unknown(world: FakeWorld) -> None:
    container = world.docker.add_container("db", image="acme/app:3",
                                           labels={"holdfast.enable": "true"},
                                           binaries=["pg_dump"])
    view = world.docker.inspect(container.id)
    world.docker.unreachable = True
    found = instances.classify(world.services, view)
    assert found is not None and found.engine is None
    assert "cannot tell the engine" in found.errors[0]


def test_classify_lays_the_catalog_override_over_the_labels(world: FakeWorld) -> None:
    container = add_db(world, "db", labels={"holdfast.retention": "last=7"})
    instances.refresh_instances(world.services)
    world.catalog.set_policy_override("db", {"retention": "last=2"})
    found = instances.classify(world.services, world.docker.inspect(container.id))
    assert found is not None and dict(found.policy.retention) == {"last": 2}


# --- choose_instances ----------------------------------------------------------------


def _instance(name: str, running: bool, container_name: str) -> Instance:
    container = DatabaseContainer(id=container_name, name=container_name, image="fake/db:1",
                                  image_id="", running=running)
    return Instance(policy=InstancePolicy(enabled=True, name=name), container=container,
                    engine="fake", errors=())


def test_a_running_container_wins_over_a_stopped_one_of_the_same_name() -> None:
    old, new = _instance("shop", False, "shop-old"), _instance("shop", True, "shop-new")
    assert instances.choose_instances([old, new]) == [new]
    assert instances.choose_instances([new, old]) == [new]


def test_the_live_listing_chooses_the_running_container(world: FakeWorld) -> None:
    add_db(world, "shop-old", labels={"holdfast.name": "shop"}, running=False)
    add_db(world, "shop-new", labels={"holdfast.name": "shop"})
    (view,) = instances.list_instances(world.services)
    assert (view.name, view.container, view.status) == ("shop", "shop-new", "running")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), max_size=12))
def test_one_instance_per_name_running_if_any_is(candidates: list[tuple[str, bool]]) -> None:
    given_instances = [_instance(name, running, f"{name}-{n}")
                       for n, (name, running) in enumerate(candidates)]
    chosen = instances.choose_instances(given_instances)
    assert [i.name for i in chosen] == sorted({name for name, _ in candidates})
    for instance in chosen:
        assert instance.container is not None
        any_running = any(running for name, running in candidates if name == instance.name)
        assert instance.container.running == any_running


# --- list_instances -----------------------------------------------------------------


def test_listing_shows_live_and_missing_instances_and_writes_nothing(world: FakeWorld) -> None:
    add_db(world, "live")
    world.docker.add_container("ignored", labels={"holdfast.enable": "no"})
    views = instances.list_instances(world.services)
    assert [(v.name, v.status, v.enabled, v.engine) for v in views] == [
        ("live", "running", True, "fake")]
    assert world.catalog.list_instances() == []


def test_a_listed_instance_as_json(world: FakeWorld) -> None:
    container = add_db(world, "db", labels={"holdfast.retention": "last=2",
                                            "holdfast.databases": "app, audit",
                                            "holdfast.verify": "After-Backup"})
    assert _view(world, "db").to_json() == {
        "name": "db", "container": "db", "container_id": container.id, "status": "running",
        "engine": "fake", "image": "fake/db:1", "enabled": True, "schedule": None,
        "retention": {"last": 2}, "target": "local", "databases": ["app", "audit"],
        "verify": "after-backup", "errors": [], "last_snapshot": None, "next_run": None,
        "policy_source": "labels", "notify": None, "stale_after": None, "ping": False,
        "host": "fake-engine", "host_status": None}


def test_a_catalogued_instance_whose_container_is_gone_is_missing(world: FakeWorld) -> None:
    world.catalog.upsert_instance(InstanceRecord(
        name="gone", engine="fake", container_id="dead", container_name="gone", image="x:1",
        labels={"holdfast.retention": "last=3", "holdfast.target": "offsite"}, error=None,
        first_seen=T0, last_seen=T0, host="fake-engine"))
    snapshot = make_snapshot(world, "gone", target="offsite")
    view = _view(world, "gone")
    assert (view.status, view.enabled, view.container, view.image) == ("missing", False, None,
                                                                       "x:1")
    assert view.host == "fake-engine"  # where it was last seen
    assert (view.retention, view.target) == ({"last": 3}, "offsite")
    assert view.last_snapshot is not None and view.last_snapshot["id"] == snapshot.id
    assert view.last_snapshot["status"] == "complete"


def test_listing_reports_the_policy_source(world: FakeWorld) -> None:
    add_db(world, "a")
    add_db(world, "b")
    instances.refresh_instances(world.services)
    world.catalog.set_policy_override("b", {"retention": "last=1"})
    sources = {v.name: v.policy_source for v in instances.list_instances(world.services)}
    assert sources == {"a": "labels", "b": "api"}


def test_a_cron_schedule_gets_its_next_run_estimated(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.schedule": "30 3 * * *"})
    before = datetime.now(UTC)
    view = _view(world, "db")
    assert view.next_run is not None
    assert (view.next_run.hour, view.next_run.minute) == (3, 30)
    assert before < view.next_run <= before + timedelta(days=1)


def test_an_every_schedule_runs_on_slots_counted_from_its_epoch(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.schedule": "@every 1d"})
    before = datetime.now(UTC)
    midnight = datetime(before.year, before.month, before.day, tzinfo=UTC) + timedelta(days=1)
    assert _view(world, "db").next_run == midnight  # 2000-01-01 + k days, never ran or not
    make_snapshot(world, "db", at=before - timedelta(hours=2))
    assert _view(world, "db").next_run == midnight


def test_the_callers_scheduler_is_asked_for_the_next_run(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.schedule": "@hourly"})
    asked: list[tuple[str, str | None]] = []

    def next_run(name: str, schedule: str | None) -> datetime:
        asked.append((name, schedule))
        return T0

    (view,) = instances.list_instances(world.services, next_run)
    assert view.next_run == T0 and asked == [("db", "@hourly")]


def test_label_errors_are_shown_and_no_run_is_promised(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.schedule": "whenever"})
    view = _view(world, "db")
    assert len(view.errors) == 1
    assert view.errors[0].startswith("holdfast.schedule:") and "5 fields" in view.errors[0]
    assert view.next_run is None and view.schedule is None


def test_a_stopped_instance_has_no_next_run(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.schedule": "@hourly"}, running=False)
    view = _view(world, "db")
    assert view.status == "stopped" and view.next_run is None


def test_the_last_snapshot_shows_a_failure_with_its_reason(world: FakeWorld) -> None:
    add_db(world, "db")
    failed = make_snapshot(world, "db", status=SnapshotStatus.FAILED)
    world.catalog.save_snapshot(failed.with_changes(error="dump exploded"))
    assert _view(world, "db").last_snapshot == {
        "id": failed.id, "status": "failed", "created_at": "2026-01-01T00:00:00Z",
        "error": "dump exploded"}


# --- find_instance / refresh ---------------------------------------------------------


def test_find_instance_writes_nothing(world: FakeWorld) -> None:
    container = add_db(world, "db")
    found = instances.find_instance(world.services, "db")
    assert found.container is not None and found.container.id == container.id
    assert world.catalog.list_instances() == []


def test_find_instance_follows_a_recreated_container(world: FakeWorld) -> None:
    old = add_db(world, "db")
    instances.refresh_instances(world.services)
    world.docker.remove_container(old.id)
    new = add_db(world, "db", volume="db-vol2")
    found = instances.find_instance(world.services, "db")
    assert found.container is not None and found.container.id == new.id


def test_find_instance_of_a_gone_container_points_at_its_snapshots(world: FakeWorld) -> None:
    container = add_db(world, "db")
    instances.refresh_instances(world.services)
    world.docker.remove_container(container.id)
    with pytest.raises(InstanceNotFound, match=r"container is gone.*holdfast snapshots db"):
        instances.find_instance(world.services, "db")


def test_find_instance_of_an_unknown_name_says_how_to_label(world: FakeWorld) -> None:
    with pytest.raises(InstanceNotFound, match=r"no running instance named 'nope'.*"
                                               r"holdfast\.enable=true"):
        instances.find_instance(world.services, "nope")


def test_refresh_records_what_it_saw(world: FakeWorld) -> None:
    container = add_db(world, "db", labels={"holdfast.retention": "last=2", "other": "x"})
    instances.refresh_instances(world.services)
    record = world.catalog.get_instance("db")
    assert record is not None
    assert (record.engine, record.container_id, record.container_name, record.image) == (
        "fake", container.id, "db", "fake/db:1")
    assert record.labels == {"holdfast.enable": "true", "holdfast.engine": "fake",
                             "holdfast.retention": "last=2"}
    assert record.error is None and record.first_seen == record.last_seen
    assert record.host == "fake-engine"


def test_refresh_keeps_first_seen_and_records_errors(world: FakeWorld) -> None:
    add_db(world, "db")
    instances.refresh_instances(world.services)
    first = world.catalog.get_instance("db")
    world.docker.by_name("db").labels["holdfast.retention"] = "forever"
    instances.refresh_instances(world.services)
    again = world.catalog.get_instance("db")
    assert first is not None and again is not None
    assert again.first_seen == first.first_seen and again.last_seen >= first.last_seen
    assert again.error is not None and "holdfast.retention" in again.error


# --- set_policy --------------------------------------------------------------------


def test_an_override_wins_over_the_labels_and_survives_a_refresh(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.retention": "last=7", "holdfast.schedule": "@daily"})
    instances.refresh_instances(world.services)
    view = instances.set_policy(world.services, "db", {"retention": "daily=3",
                                                       "schedule": None})
    assert (view.retention, view.schedule, view.policy_source) == ({"daily": 3}, "@daily", "api")
    instances.refresh_instances(world.services)
    record = world.catalog.get_instance("db")
    assert record is not None and record.policy_override == {"retention": "daily=3"}
    assert _view(world, "db").retention == {"daily": 3}


def test_clearing_the_override_goes_back_to_the_labels(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.retention": "last=7"})
    instances.refresh_instances(world.services)
    instances.set_policy(world.services, "db", {"retention": "last=1"})
    view = instances.set_policy(world.services, "db", None)
    assert (view.retention, view.policy_source) == ({"last": 7}, "labels")
    record = world.catalog.get_instance("db")
    assert record is not None and record.policy_override is None


def test_an_unknown_policy_field_is_refused(world: FakeWorld) -> None:
    add_db(world, "db")
    instances.refresh_instances(world.services)
    with pytest.raises(InvalidLabels, match=r"unknown policy field\(s\) colour, engine"):
        instances.set_policy(world.services, "db", {"colour": "blue", "engine": "redis"})
    record = world.catalog.get_instance("db")
    assert record is not None and record.policy_override is None


def test_a_bad_policy_value_is_refused_and_nothing_stored(world: FakeWorld) -> None:
    add_db(world, "db")
    instances.refresh_instances(world.services)
    with pytest.raises(InvalidLabels,
                       match=r"holdfast\.retention: retention last='0' must be a positive"):
        instances.set_policy(world.services, "db", {"retention": "last=0"})
    record = world.catalog.get_instance("db")
    assert record is not None and record.policy_override is None


def test_the_policy_of_an_unknown_instance_cannot_be_set(world: FakeWorld) -> None:
    with pytest.raises(InstanceNotFound, match=r"no instance named 'ghost'"):
        instances.set_policy(world.services, "ghost", {"retention": "last=1"})


def test_set_policy_calls_applied_after_storing(world: FakeWorld) -> None:
    add_db(world, "db")
    instances.refresh_instances(world.services)
    seen: list[object] = []

    def applied() -> None:
        record = world.catalog.get_instance("db")
        seen.append(record.policy_override if record else None)

    instances.set_policy(world.services, "db", {"target": "offsite"}, applied=applied)
    assert seen == [{"target": "offsite"}]


def test_set_policy_does_not_report_failure_for_a_change_it_made(world: FakeWorld) -> None:
    add_db(world, "db")
    instances.refresh_instances(world.services)
    world.docker.unreachable = True
    try:
        instances.set_policy(world.services, "db", {"retention": "last=1"})
    except DockerUnavailable:
        record = world.catalog.get_instance("db")
        assert record is not None and record.policy_override is None, "refused, yet stored"


def test_jobs_and_mode_set_through_the_api_reach_the_engine_and_bad_ones_are_refused(
        world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.jobs": "1"})
    instances.refresh_instances(world.services)
    instances.set_policy(world.services, "db", {"jobs": "4", "mode": "physical"})
    labels = backups.prepare_backup(world.services, "db").container.labels
    assert (labels["holdfast.jobs"], labels["holdfast.mode"]) == ("4", "physical")
    with pytest.raises(InvalidLabels, match=r"holdfast\.mode 'snapshot': use logical or physical"):
        instances.set_policy(world.services, "db", {"mode": "snapshot"})
    with pytest.raises(InvalidLabels, match=r"holdfast\.jobs '17': give a whole number"):
        instances.set_policy(world.services, "db", {"jobs": "17"})
    record = world.catalog.get_instance("db")
    assert record is not None and record.policy_override == {"jobs": "4", "mode": "physical"}
