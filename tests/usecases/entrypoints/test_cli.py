"""The ``holdfast`` command line through typer's CliRunner, with bootstrap swapped for the fakes."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import service.entrypoints.cli  # noqa: F401  (registers every command on the app)
from backup.errors import DockerUnavailable
from backup.types import SnapshotStatus
from service.entrypoints.cli.app import app
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.entrypoints.helpers import add_db, denying_factory
from tests.usecases.support import make_snapshot

CLI_MODULE = importlib.import_module("service.entrypoints.cli.app")
"""The module, not the Typer app the package re-exports under the same name."""

Cli = Callable[..., Result]
CliFor = Callable[[FakeWorld], Cli]


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger onto the runner's stderr; put it back after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def cli_for(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliFor:
    def make(world: FakeWorld) -> Cli:
        monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
        runner = CliRunner()

        def invoke(*args: str) -> Result:
            return runner.invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
        return invoke
    return make


@pytest.fixture
def cli(world: FakeWorld, cli_for: CliFor) -> Cli:
    return cli_for(world)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def failed(result: Result, code: int) -> str:
    """The command exited ``code`` with one line on stderr, ``holdfast: ...``; that line."""
    assert result.exit_code == code, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("holdfast: ")
    return line


def backed_up(cli: Cli, instance: str = "shop-db") -> dict[str, Any]:
    snapshot: dict[str, Any] = ok_json(cli("backup", instance, "--json"))
    return snapshot


# --- instances -----------------------------------------------------------------------


def test_instances_prints_a_table(world: FakeWorld, cli: Cli,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # wide enough for every column (80: test_cli_output)
    add_db(world, labels={"holdfast.schedule": "@daily"})
    result = cli("instances")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split()[:5] == ["NAME", "CONTAINER", "STATUS", "ENGINE", "SCHEDULE"]
    assert row.split()[:5] == ["shop-db", "shop-db", "running", "fake", "@daily"]


def test_instances_without_any_says_how_to_label_one(cli: Cli) -> None:
    result = cli("instances")
    assert (result.exit_code, result.stdout.strip()) == (
        0, "no instances: label a container holdfast.enable=true")


def test_instances_json(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    [shop] = ok_json(cli("instances", "--json"))
    assert (shop["name"], shop["status"], shop["engine"]) == ("shop-db", "running", "fake")


# --- backups and snapshots -------------------------------------------------------------


def test_backup_json_is_the_complete_snapshot(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot = backed_up(cli)
    assert (snapshot["status"], snapshot["instance"], snapshot["raw_bytes"]) == (
        "complete", "shop-db", 100_000)
    stored = world.catalog.get_snapshot(snapshot["id"])
    assert stored is not None and stored.status == SnapshotStatus.COMPLETE


def test_backup_prints_one_line_naming_the_snapshot(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    result = cli("backup", "shop-db", "--target", "offsite")
    assert result.exit_code == 0, result.output
    [snapshot] = world.catalog.list_snapshots()
    assert result.stdout.strip().startswith(f"snapshot {snapshot.id} complete: ")
    assert result.stdout.strip().endswith("in target offsite")


def test_snapshots_lists_newest_first(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    older, newer = backed_up(cli)["id"], backed_up(cli)["id"]
    assert [s["id"] for s in ok_json(cli("snapshots", "--json"))] == [newer, older]
    table = cli("snapshots", "shop-db").stdout.splitlines()
    assert table[0].split()[:2] == ["ID", "INSTANCE"]
    assert [line.split()[0] for line in table[1:]] == [newer, older]
    assert ok_json(cli("snapshots", "other-db", "--json")) == []


def test_restore_makes_a_container_with_the_sources_bytes(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    restored = ok_json(cli("restore", snapshot_id, "--name", "shop-copy", "--json"))
    assert (restored["snapshot_id"], restored["container"]) == (snapshot_id, "shop-copy")
    assert world.docker.data_of("shop-copy") == world.docker.data_of("shop-db")


def test_restore_prints_one_line(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    result = cli("restore", snapshot_id, "--name", "shop-copy")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"restored {snapshot_id} into container shop-copy ")


def test_delete_removes_the_snapshot(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    result = cli("delete", snapshot_id)
    assert (result.exit_code, result.stdout.strip()) == (0, f"deleted snapshot {snapshot_id}")
    assert world.catalog.get_snapshot(snapshot_id) is None
    assert not list(world.storage().list(f"shop-db/{snapshot_id}/"))


def test_restore_latest_takes_the_instances_newest_complete_snapshot(
        world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    backed_up(cli)
    newest = backed_up(cli)["id"]
    result = cli("restore", "shop-db", "--latest", "--name", "shop-copy")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"restored {newest} into container shop-copy ")
    assert world.docker.data_of("shop-copy") == world.docker.data_of("shop-db")


def test_restore_latest_without_a_complete_snapshot_exits_3_naming_the_instance(
        world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    line = failed(cli("restore", "shop-db", "--latest", "--name", "copy"), 3)
    assert "instance shop-db has no complete snapshot" in line
    assert "copy" not in world.docker.container_names()


def test_restore_and_delete_take_an_unambiguous_id_prefix(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    restored = ok_json(cli("restore", snapshot_id[:-2], "--name", "shop-copy", "--json"))
    assert restored["snapshot_id"] == snapshot_id
    result = cli("delete", snapshot_id[:-2])
    assert (result.exit_code, result.stdout.strip()) == (0, f"deleted snapshot {snapshot_id}")
    assert world.catalog.get_snapshot(snapshot_id) is None


def test_an_ambiguous_prefix_exits_2_listing_the_candidates(world: FakeWorld, cli: Cli) -> None:
    first, second = (make_snapshot(world, "shop-db").id for _ in range(2))
    line = failed(cli("delete", first[:16]), 2)
    assert "is ambiguous" in line and first in line and second in line
    assert {s.id for s in world.catalog.list_snapshots()} == {first, second}


@pytest.mark.parametrize(("image", "code"), [("Nope:1", 2), ("../x", 2), ("fake/db:404", 3)])
def test_restore_with_a_bad_or_missing_image_fails_before_anything(
        world: FakeWorld, cli: Cli, image: str, code: int) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    volumes = set(world.docker.volumes)
    failed(cli("restore", snapshot_id, "--name", "copy", "--image", image), code)
    assert "copy" not in world.docker.container_names() and set(world.docker.volumes) == volumes


def test_prune_dry_run_lists_and_keeps(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    older, newer = backed_up(cli)["id"], backed_up(cli)["id"]
    world.docker.by_name("shop-db").labels["holdfast.retention"] = "last=1"
    [result] = ok_json(cli("prune", "shop-db", "--dry-run", "--json"))
    assert (result["forgotten"], result["kept"], result["dry_run"]) == ([older], [newer], True)
    assert {s.id for s in world.catalog.list_snapshots()} == {older, newer}
    line = cli("prune", "--dry-run").stdout.strip()
    assert line == f"shop-db: keeping 1, would forget 1: {older}"


def test_catalog_rebuild_restores_rows_from_the_manifests(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    world.catalog.delete_snapshot(snapshot_id)
    report = ok_json(cli("catalog", "rebuild", "--json"))
    assert report == {"added": 1, "updated": 0, "targets": {"local": 1, "offsite": 0},
                      "broken": [], "errors": {}}
    rebuilt = world.catalog.get_snapshot(snapshot_id)
    assert rebuilt is not None and rebuilt.status == SnapshotStatus.COMPLETE


# --- targets -------------------------------------------------------------------------------


def test_targets_check_passes_for_working_targets(cli: Cli) -> None:
    result = cli("targets", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["local", "offsite"]
    assert all(line.split()[2] == "ok" for line in lines)


def test_targets_check_exits_1_when_a_target_fails(tmp_path: Path, cli_for: CliFor) -> None:
    cli = cli_for(fake_world(tmp_path, env={"HOLDFAST_TARGET_BROKEN": "bogus://nowhere"}))
    result = cli("targets", "check", "--json")
    assert result.exit_code == 1
    verdicts = {t["name"]: t["ok"] for t in json.loads(result.stdout)}
    assert verdicts == {"broken": False, "local": True, "offsite": True}
    only_good = cli("targets", "check", "local")
    assert only_good.exit_code == 0, only_good.output


# --- volumes -------------------------------------------------------------------------------


def test_volumes_ls_shows_users_and_sizes(world: FakeWorld, cli: Cli) -> None:
    add_db(world, size=2048)
    [volume] = ok_json(cli("volumes", "ls", "--json"))
    assert (volume["name"], volume["size_bytes"]) == ("shop-db-vol", 2048)
    assert [u["name"] for u in volume["users"]] == ["shop-db"]
    [unmeasured] = ok_json(cli("volumes", "ls", "--no-size", "--json"))
    assert unmeasured["size_bytes"] is None
    table = cli("volumes", "ls").stdout.splitlines()
    assert table[1].split()[:3] == ["shop-db-vol", "2.0", "KiB"]


def test_volumes_create_with_labels(world: FakeWorld, cli: Cli) -> None:
    result = cli("volumes", "create", "scratch", "--label", "team=shop", "--label", "tier=")
    assert (result.exit_code, result.stdout.strip()) == (0, "created volume scratch")
    assert world.docker.volumes["scratch"].labels == {"team": "shop", "tier": ""}


def test_volumes_rm_removes_an_unused_volume(world: FakeWorld, cli: Cli) -> None:
    cli("volumes", "create", "scratch")
    assert ok_json(cli("volumes", "rm", "scratch", "--json"))["name"] == "scratch"
    assert "scratch" not in world.docker.volumes


def test_volumes_rm_refuses_a_volume_in_use(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    line = failed(cli("volumes", "rm", "shop-db-vol"), 4)
    assert "shop-db" in line
    assert "shop-db-vol" in world.docker.volumes


def test_volumes_clone_copies_the_contents(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    clone = ok_json(cli("volumes", "clone", "shop-db-vol", "shop-copy", "--json"))
    assert (clone["source"], clone["target"], clone["created"]) == (
        "shop-db-vol", "shop-copy", True)
    assert world.docker.volumes["shop-copy"].content == world.docker.data_of("shop-db")
    assert world.docker.volumes["shop-copy"].labels["holdfast.cloned-from"] == "shop-db-vol"


# --- failures ------------------------------------------------------------------------------


def test_a_malformed_label_is_bad_input_exit_2(world: FakeWorld, cli: Cli) -> None:
    line = failed(cli("volumes", "create", "scratch", "--label", "nokey"), 2)
    assert "KEY=VALUE" in line
    assert "scratch" not in world.docker.volumes


def test_an_unknown_snapshot_is_exit_3(world: FakeWorld, cli: Cli) -> None:
    for args in (("restore", "20200101T000000Z-000000", "--name", "copy"),
                 ("delete", "20200101T000000Z-000000")):
        line = failed(cli(*args), 3)
        assert "20200101T000000Z-000000" in line and "holdfast snapshots" in line
    assert "copy" not in {c.name for c in world.docker.containers.values()}


def test_an_unknown_instance_is_exit_3(world: FakeWorld, cli: Cli) -> None:
    line = failed(cli("backup", "nope"), 3)
    assert "'nope'" in line and "holdfast.enable=true" in line
    assert world.catalog.list_snapshots() == []


def test_restoring_onto_a_taken_name_is_exit_4(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    snapshot_id = backed_up(cli)["id"]
    line = failed(cli("restore", snapshot_id, "--name", "shop-db"), 4)
    assert "shop-db" in line


def test_a_stopped_container_is_exit_4(world: FakeWorld, cli: Cli) -> None:
    add_db(world, running=False)
    failed(cli("backup", "shop-db"), 4)
    assert world.catalog.list_snapshots() == []


def test_docker_unreachable_is_exit_5(world: FakeWorld, cli: Cli) -> None:
    world.docker.unreachable = True
    line = failed(cli("instances"), 5)
    assert "Docker" in line


def test_a_target_refusing_credentials_is_exit_2(world: FakeWorld, cli: Cli) -> None:
    world.services.storage_factory = denying_factory
    add_db(world)
    line = failed(cli("backup", "shop-db"), 2)
    assert "access denied" in line
    assert world.catalog.list_snapshots() == []


def test_a_failed_dump_is_exit_1_and_leaves_a_failed_snapshot(world: FakeWorld, cli: Cli) -> None:
    add_db(world)
    world.docker.dump_error = "disk I/O error"
    failed(cli("backup", "shop-db"), 1)
    [snapshot] = world.catalog.list_snapshots()
    assert snapshot.status == SnapshotStatus.FAILED


def test_bad_settings_are_exit_2(world: FakeWorld, cli: Cli, monkeypatch: pytest.MonkeyPatch
                                 ) -> None:
    monkeypatch.setenv("HOLDFAST_JOB_WORKERS", "none")
    line = failed(cli("instances"), 2)
    assert line.startswith("holdfast: HOLDFAST_JOB_WORKERS")


def test_each_command_closes_its_services(world: FakeWorld, cli: Cli) -> None:
    cli("instances")
    world.docker.unreachable = True
    failed(cli("instances"), 5)
    assert (world.docker.closed, world.catalog.closed) == (2, True)


def test_bad_target_names_in_settings_are_exit_2(cli: Cli, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    monkeypatch.setenv("HOLDFAST_TARGET_NO-GOOD", "memory://x")
    assert "HOLDFAST_TARGET_NO-GOOD" in failed(cli("snapshots"), 2)


# --- serve -----------------------------------------------------------------------------------


def test_serve_runs_the_daemon_on_the_given_address(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str | None, int | None]] = []
    monkeypatch.setattr("service.entrypoints.daemon.run_daemon",
                        lambda settings, host, port: calls.append((host, port)))
    result = cli("serve", "--host", "0.0.0.0", "--port", "9999")
    assert result.exit_code == 0, result.output
    assert calls == [("0.0.0.0", 9999)]


def test_serve_fails_in_one_line_when_the_daemon_cannot_start(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(settings: object, host: object, port: object) -> None:
        raise DockerUnavailable("cannot reach the Docker engine at unix:///x")
    monkeypatch.setattr("service.entrypoints.daemon.run_daemon", refuse)
    assert "Docker" in failed(cli("serve"), 5)
    monkeypatch.setenv("HOLDFAST_API_PORT", "port")
    failed(cli("serve"), 2)
