"""``holdfast verify --restore`` on the fakes: a snapshot that restores and
matches exits 0 and says how many figures it compared; one that differs exits
1 with the figure that differs on one line and a FIGURE/RECORDED/RESTORED
table; ``holdfast snapshots`` then shows the verdict; ``--server`` runs the
daemon's ``verify-restore`` job and prints and exits as a local run."""

from __future__ import annotations

import json

from backup.pipeline import manifest_key
from tests.fakes.services import FakeWorld
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (fixtures)
    Cli,
    CliFor,
    _keep_logging,
    cli_for,
    failed,
    ok_json,
)
from tests.usecases.entrypoints.test_remote_cli import (  # noqa: F401  (fixtures)
    Run,
    api,
    local,
    made,
    remote,
)
from tests.usecases.support import add_db, objects, replace_object, take_backup


def _skew_figures(world: FakeWorld, instance: str, snapshot_id: str) -> int:
    """Record one byte more in the manifest's figures than the data holds."""
    key = manifest_key(instance, snapshot_id)
    manifest = json.loads(objects(world)[key])
    manifest["figures"]["values"]["bytes"] += 1
    replace_object(world, key, json.dumps(manifest).encode())
    return int(manifest["figures"]["values"]["bytes"])


def test_a_matching_snapshot_passes_and_the_listing_shows_it(
        world: FakeWorld, cli_for: CliFor) -> None:  # noqa: F811
    holdfast: Cli = cli_for(world)
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    result = holdfast("verify", "--restore", snapshot.id)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"snapshot {snapshot.id} restored and matched its backup: "
                                    "3 figure(s) compared (exact figures)")
    listed = holdfast("snapshots")
    assert "VERIFIED" in listed.stdout and "passed" in listed.stdout
    [row] = ok_json(holdfast("snapshots", "--json"))
    assert row["verification"]["result"] == "passed" and row["verified_at"]


def test_a_copy_that_differs_exits_1_naming_the_figure(
        world: FakeWorld, cli_for: CliFor) -> None:  # noqa: F811
    holdfast: Cli = cli_for(world)
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    recorded = _skew_figures(world, "shop", snapshot.id)
    result = holdfast("verify", "--restore", snapshot.id)
    assert result.exit_code == 1, result.output
    *progress, line = result.stderr.splitlines()  # a progress line may come first
    assert all(not text.startswith("holdfast: ") for text in progress), result.stderr
    assert line == (f"holdfast: snapshot {snapshot.id} failed its verified restore: "
                    f"bytes: {recorded} recorded, {recorded - 1} restored")
    assert result.stdout.split()[:3] == ["FIGURE", "RECORDED", "RESTORED"]
    as_json = holdfast("verify", "--restore", snapshot.id, "--json")
    assert as_json.exit_code == 1
    assert json.loads(as_json.stdout)["differences"] == [
        {"name": "bytes", "recorded": recorded, "measured": recorded - 1}]
    assert "FAILED" in holdfast("snapshots").stdout


def test_restore_needs_one_snapshot(world: FakeWorld, cli_for: CliFor) -> None:  # noqa: F811
    holdfast: Cli = cli_for(world)
    line = failed(holdfast("verify", "--restore", "--target", "local"), 2)
    assert "one of them" in line or "one SNAPSHOT" in line


def test_server_mode_runs_the_daemon_s_job_and_exits_as_locally(
        world: FakeWorld, local: Run, remote: Run) -> None:  # noqa: F811
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    here = json.loads(local("verify", "--restore", snapshot.id, "--json").stdout)
    there = json.loads(remote("verify", "--restore", snapshot.id, "--json").stdout)
    assert there["result"] == here["result"] == "passed"
    assert there["figures"] == here["figures"] and there["job_id"] and not here["job_id"]
    _skew_figures(world, "shop", snapshot.id)
    here_run, there_run = (run("verify", "--restore", snapshot.id) for run in (local, remote))
    assert here_run.exit_code == there_run.exit_code == 1
    assert here_run.stderr.splitlines()[-1] == there_run.stderr.splitlines()[-1]
