"""``holdfast verify`` on the fakes: exit 0 whole, 1 not whole (the first failure on
one line on stderr), 2 for bad arguments and for an encrypted snapshot without
(or with a wrong) identity, the same line a restore prints, 3 for an unknown
snapshot or target; ``--json`` prints the report; ``--target`` reports orphans
and says what it left unchecked without an identity; and ``--server`` prints
the same and exits the same as a local run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from backup.encryption import fingerprint
from service.settings import Settings
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (fixtures)
    CLI_MODULE,
    Cli,
    CliFor,
    _keep_logging,
    cli_for,
    failed,
    ok_json,
)
from tests.usecases.entrypoints.test_keys_cli import identity_file, no_secret, run  # noqa: F401
from tests.usecases.entrypoints.test_remote_cli import (  # noqa: F401  (fixtures)
    Run,
    api,
    local,
    made,
    remote,
)
from tests.usecases.support import add_db, objects, replace_object, take_backup

CHECKS = ["manifest", "present", "size", "sha256", "decrypts", "decompresses", "framing"]


@pytest.fixture
def holdfast(world: FakeWorld, cli_for: CliFor) -> Cli:  # noqa: F811
    """``holdfast ARGS`` on this machine, over ``world``."""
    return cli_for(world)


def _flip(world: FakeWorld, key: str) -> None:
    data = bytearray(objects(world)[key])
    data[len(data) // 2] ^= 0x01
    replace_object(world, key, bytes(data))


def test_a_whole_snapshot_exits_0_with_one_line_per_check(world: FakeWorld, holdfast: Cli) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    result = holdfast("verify", snapshot.id)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == CHECKS
    assert lines[-1].startswith(f"snapshot {snapshot.id} is whole")
    report = ok_json(holdfast("verify", snapshot.id[:10], "--json"))
    assert report["whole"] is True and report["snapshot_id"] == snapshot.id
    assert [c["check"] for c in report["checks"]] == CHECKS
    assert set(report) >= {"target", "data_key", "problem", "error", "stored_size",
                           "expected_size", "fully_checked"}


def test_a_damaged_snapshot_exits_1_naming_the_check(world: FakeWorld, holdfast: Cli) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    _flip(world, snapshot.data_key)
    line = failed(holdfast("verify", snapshot.id), 1)
    assert line.startswith(f"holdfast: snapshot {snapshot.id} is not whole: sha256: ")
    shown = holdfast("verify", snapshot.id, "--json")
    assert shown.exit_code == 1
    assert json.loads(shown.stdout)["problem"] == "corrupt"


def test_bad_arguments_and_unknown_names(world: FakeWorld, holdfast: Cli) -> None:
    assert "one of them" in failed(holdfast("verify"), 2)
    both = holdfast("verify", "20260101T000000Z-abcdef", "--target", "local")
    assert "one of them" in failed(both, 2)
    assert "no snapshot" in failed(holdfast("verify", "20260101T000000Z-abcdef"), 3)
    assert "no storage target named 'elsewhere'" in failed(holdfast("verify", "--target",
                                                               "elsewhere"), 3)


def test_target_verify_reports_an_orphan_and_exits_1(world: FakeWorld, holdfast: Cli) -> None:
    add_db(world, "shop")
    take_backup(world, "shop")
    assert holdfast("verify", "--target", "local").exit_code == 0
    world.storage().put("shop/stray.bin", [b"left"])
    result = holdfast("verify", "--target", "local")
    line = failed(result, 1)
    assert "1 orphan" in line
    assert any(row.split()[:2] == ["orphan", "shop/stray.bin"]
               for row in result.stdout.splitlines())
    report = json.loads(holdfast("verify", "--target", "local", "--json").stdout)
    assert [p["kind"] for p in report["problems"]] == ["orphan"]


@pytest.fixture
def encrypted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
              run: Cli) -> tuple[FakeWorld, Cli, Path, str]:  # noqa: F811
    """An encrypting fake world with a snapshot of ``shop``, the CLI over it (its
    ``--identity`` reaching the fakes), the identity file and its recipient."""
    path, recipient = identity_file(tmp_path / "ops.key")
    world = fake_world(tmp_path / "world", {"HOLDFAST_AGE_RECIPIENTS": recipient})
    add_db(world, "shop")
    take_backup(world, "shop")

    def bootstrap(settings: Settings) -> object:
        world.services.settings.identity_file = settings.identity_file
        world.services._identities.clear()
        return world.services
    monkeypatch.setattr(CLI_MODULE, "bootstrap", bootstrap)
    return world, run, path, recipient


def test_an_encrypted_snapshot_needs_the_identity_as_a_restore_does(
        encrypted: tuple[FakeWorld, Cli, Path, str], tmp_path: Path) -> None:
    world, holdfast, path, recipient = encrypted
    [snapshot] = world.catalog.list_snapshots()
    line = failed(holdfast("verify", snapshot.id), 2)
    assert line == failed(holdfast("restore", snapshot.id, "--name", "copy"), 2)
    assert fingerprint(recipient) in line
    stranger, _ = identity_file(tmp_path / "stranger.key")
    wrong = holdfast("verify", snapshot.id, "--identity", str(stranger))
    assert "does not open" in failed(wrong, 2)
    report = ok_json(no_secret(holdfast("verify", snapshot.id, "--identity", str(path), "--json")))
    assert report["fully_checked"] and report["encryption"] == "age-v1"


def test_target_verify_without_identity_checks_size_and_sha_and_says_so(
        encrypted: tuple[FakeWorld, Cli, Path, str]) -> None:
    _, holdfast, path, _ = encrypted
    result = holdfast("verify", "--target", "local")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1].endswith(
        "1 encrypted objects checked for size and sha256 only: no identity")
    assert "partly checked" in result.stdout
    with_identity = holdfast("verify", "--target", "local", "--identity", str(path))
    assert with_identity.exit_code == 0 and "size and sha256 only" not in with_identity.stdout


# --- --server: the daemon's job, the same output and exit status --------------------------


def _both(local: Run, remote: Run, *args: str) -> tuple[Result, Result]:  # noqa: F811
    here, there = local(*args), remote(*args)
    assert (here.exit_code, here.stdout) == (there.exit_code, there.stdout), \
        (args, here.output, there.output)
    return here, there


def test_server_mode_prints_and_exits_as_local_mode(
        world: FakeWorld, local: Run, remote: Run) -> None:  # noqa: F811
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    here, _ = _both(local, remote, "verify", snapshot.id, "--json")
    assert here.exit_code == 0
    _both(local, remote, "verify", "--target", "local")
    _flip(world, snapshot.data_key)
    for args in (("verify", snapshot.id), ("verify", "--target", "local", "--json"),
                 ("verify", "20260101T000000Z-abcdef"), ("verify", "--target", "nowhere")):
        here, there = _both(local, remote, *args)
        assert here.exit_code in (1, 3)
        last: Any = [ln for ln in there.stderr.splitlines() if ln.startswith("holdfast: ")]
        assert last[-1] == here.stderr.splitlines()[-1]


def test_identity_with_server_is_refused(remote: Run, tmp_path: Path) -> None:  # noqa: F811
    path, _ = identity_file(tmp_path / "ops.key")
    result = remote("verify", "20260101T000000Z-abcdef", "--identity", str(path))
    assert result.exit_code == 2 and "--identity runs only on this machine" in result.stderr
