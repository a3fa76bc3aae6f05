"""Forgetting an instance (``holdfast forget``, ``DELETE /v1/instances/{name}``) on the
fakes: the record, its policy and its snapshot rows leave the catalog while the
objects stay in the targets, and it is refused while it would be undone at once
(a labelled container still there) or would pull rows from under a run."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

import service.entrypoints.cli  # noqa: F401  (registers every command on the app)
from backup.errors import Conflict, InstanceNotFound
from backup.types import SnapshotStatus
from service.entrypoints.api import create_app
from service.entrypoints.cli.app import app
from service.records import JobRecord, JobStatus
from service.usecases import instances as instance_cases
from service.usecases import snapshots as snapshot_cases
from service.usecases.instances import forget_instance, refresh_instances
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    T0,
    add_db,
    make_snapshot,
    objects,
    take_backup,
)

CLI_MODULE = importlib.import_module("service.entrypoints.cli.app")
Cli = Callable[..., Result]


def gone_with_history(world: FakeWorld, name: str = "shop-db") -> list[str]:
    """An instance that was discovered, backed up twice, given an API policy, and
    whose container was then removed; the ids of its snapshots, oldest first."""
    container = add_db(world, name)
    refresh_instances(world.services)
    ids = [take_backup(world, name).id, take_backup(world, name).id]
    world.catalog.set_policy_override(name, {"schedule": "@daily"})
    world.docker.remove_container(container.id)
    return ids


def test_forget_removes_record_policy_and_snapshot_rows_and_keeps_the_objects(
        world: FakeWorld) -> None:
    ids = gone_with_history(world)
    add_db(world, "other-db")
    refresh_instances(world.services)
    other = take_backup(world, "other-db")
    stored = objects(world)
    assert [v.status for v in instance_cases.list_instances(world.services)
            if v.name == "shop-db"] == ["missing"]

    forgotten = forget_instance(world.services, "shop-db")

    assert forgotten.to_json() == {"instance": "shop-db", "snapshots": ids, "objects_kept": True}
    assert world.catalog.get_instance("shop-db") is None
    assert world.catalog.list_snapshots("shop-db") == []
    assert [v.name for v in instance_cases.list_instances(world.services)] == ["other-db"]
    assert [s.id for s in world.catalog.list_snapshots()] == [other.id]
    assert objects(world) == stored  # nothing left any target
    # The objects are still snapshots: a rebuild lists them again, without a record.
    snapshot_cases.rebuild_catalog(world.services)
    assert sorted(s.id for s in world.catalog.list_snapshots("shop-db")) == sorted(ids)
    assert world.catalog.get_instance("shop-db") is None


def test_a_container_still_labelled_is_refused_and_nothing_is_removed(world: FakeWorld) -> None:
    add_db(world, "shop-db")
    refresh_instances(world.services)
    snapshot = take_backup(world, "shop-db")
    with pytest.raises(Conflict, match=r"container shop-db is still labelled .*holdfast\.enable"
                                       r"=false"):
        forget_instance(world.services, "shop-db")
    assert world.catalog.get_instance("shop-db") is not None
    assert [s.id for s in world.catalog.list_snapshots("shop-db")] == [snapshot.id]


def test_a_queued_or_running_job_refuses_it(world: FakeWorld) -> None:
    gone_with_history(world)
    world.catalog.add_job(JobRecord(id="job-1", kind="backup", status=JobStatus.QUEUED,
                                    created_at=T0, instance="shop-db"))
    with pytest.raises(Conflict, match="backup job job-1 queued"):
        forget_instance(world.services, "shop-db")
    assert world.catalog.get_instance("shop-db") is not None


def test_a_snapshot_being_written_refuses_it_but_an_interrupted_one_does_not(
        world: FakeWorld) -> None:
    gone_with_history(world)
    live = make_snapshot(world, "shop-db", status=SnapshotStatus.RUNNING,
                         runner=OTHER_HOST_RUNNER)
    with pytest.raises(Conflict, match=f"snapshot {live.id} of shop-db is still being written"):
        forget_instance(world.services, "shop-db")
    world.catalog.save_snapshot(live.with_changes(runner=DEAD_RUNNER))
    assert live.id in forget_instance(world.services, "shop-db").snapshots


def test_a_run_of_this_process_refuses_it(world: FakeWorld) -> None:
    gone_with_history(world)
    world.services.gate.claim("shop-db", "job-7")
    with pytest.raises(Conflict, match="job-7"):
        forget_instance(world.services, "shop-db")
    assert world.catalog.get_instance("shop-db") is not None
    assert world.services.gate.holder("shop-db") == "job-7"  # forget did not take it over


def test_an_unknown_instance_is_not_found(world: FakeWorld) -> None:
    with pytest.raises(InstanceNotFound, match="no instance named 'nope' in the catalog"):
        forget_instance(world.services, "nope")


def test_snapshot_rows_without_a_record_can_be_forgotten(world: FakeWorld) -> None:
    snapshot = make_snapshot(world, "rebuilt-db")  # as a catalog rebuild leaves them
    assert forget_instance(world.services, "rebuilt-db").snapshots == [snapshot.id]
    assert world.catalog.list_snapshots() == []


# --- the CLI and the API -----------------------------------------------------------------


@pytest.fixture
def cli(world: FakeWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
    return invoke


def test_cli_forget_prints_what_went_and_fails_in_one_line(world: FakeWorld, cli: Cli) -> None:
    ids = gone_with_history(world)
    add_db(world, "live-db")
    refresh_instances(world.services)

    done = cli("forget", "shop-db", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout) == {"instance": "shop-db", "snapshots": ids,
                                       "objects_kept": True}

    refused = cli("forget", "live-db")
    assert refused.exit_code == 4, refused.output
    [line] = refused.stderr.splitlines()
    assert line.startswith("holdfast: container live-db is still labelled for live-db")
    unknown = cli("forget", "shop-db")
    assert unknown.exit_code == 3
    assert unknown.stderr.startswith("holdfast: no instance named 'shop-db'")


def test_cli_forget_says_the_objects_stay(world: FakeWorld, cli: Cli) -> None:
    gone_with_history(world)
    done = cli("forget", "shop-db")
    assert done.exit_code == 0, done.output
    assert done.stdout.strip() == (
        "forgot instance shop-db and 2 snapshot row(s); their objects stay in the targets "
        "('holdfast catalog rebuild' lists them again)")


@pytest.fixture
def client(world: FakeWorld) -> Iterator[TestClient]:
    jobs = JobRunner(world.services, 1)
    yield api_client(create_app(world.services, jobs))
    jobs.shutdown(grace=5, cancel_wait=5)


def test_api_delete_forgets_and_answers_409_and_404(world: FakeWorld, client: TestClient) -> None:
    ids = gone_with_history(world)
    add_db(world, "live-db")
    refresh_instances(world.services)

    response = client.delete("/v1/instances/shop-db")
    assert response.status_code == 200, response.text
    assert response.json() == {"instance": "shop-db", "snapshots": ids, "objects_kept": True}
    assert world.catalog.get_instance("shop-db") is None

    refused = client.delete("/v1/instances/live-db")
    assert refused.status_code == 409, refused.text
    assert refused.json()["kind"] == "Conflict"
    assert world.catalog.get_instance("live-db") is not None
    assert client.delete("/v1/instances/shop-db").status_code == 404
