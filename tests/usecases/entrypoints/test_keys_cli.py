"""``holdfast keys`` and ``restore --identity`` on the fakes: ``keys generate`` writes
a 0600 identity and prints only its recipient (never over an existing file, exit 4),
``keys fingerprint`` prints fingerprints and never a secret, and ``--identity`` is a
usage error for a missing file, refused with ``--server`` and honoured (for that
invocation only) by a restore of an encrypted snapshot."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from backup.encryption import fingerprint, load_identities, new_identity
from service.entrypoints.cli.app import app
from service.settings import Settings
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (_keep_logging: a fixture)
    CLI_MODULE,
    Cli,
    _keep_logging,
    failed,
    ok_json,
)
from tests.usecases.support import add_db

SERVER = "http://holdfast.test:8420"
SECRET = "AGE-SECRET-KEY-"


@pytest.fixture
def run(tmp_path: Path) -> Cli:
    """``holdfast ARGS`` on this machine; the keys commands need no services."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
    return invoke


def identity_file(path: Path) -> tuple[Path, str]:
    text, recipient = new_identity()
    path.write_text(text)
    return path, recipient


def no_secret(result: Result) -> Result:
    assert SECRET not in result.stdout and SECRET not in result.stderr, result.output
    return result


# --- keys generate ---------------------------------------------------------------------


def test_generate_writes_a_0600_identity_and_prints_only_its_recipient(
        run: Cli, tmp_path: Path) -> None:
    target = tmp_path / "ops.key"
    result = no_secret(run("keys", "generate", "-o", str(target)))
    assert result.exit_code == 0, result.output
    [recipient] = result.stdout.splitlines()
    assert recipient.startswith("age1")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert SECRET in target.read_text()
    assert load_identities(target).fingerprints == {fingerprint(recipient)}
    assert str(target) in result.stderr and "back it up" in result.stderr


def test_generate_never_overwrites_a_file_exit_4(run: Cli, tmp_path: Path) -> None:
    target, _ = identity_file(tmp_path / "only-copy.key")
    before = target.read_bytes()
    line = failed(run("keys", "generate", "--output", str(target)), 4)
    assert str(target) in line and "never overwritten" in line
    assert target.read_bytes() == before


def test_generate_json_is_the_file_recipient_and_fingerprint(run: Cli, tmp_path: Path) -> None:
    target = tmp_path / "dr.key"
    made = ok_json(no_secret(run("keys", "generate", "-o", str(target), "--json")))
    assert set(made) == {"identity_file", "recipient", "fingerprint"}
    assert made["identity_file"] == str(target)
    assert made["fingerprint"] == fingerprint(made["recipient"])
    assert load_identities(target).fingerprints == {made["fingerprint"]}


def test_generate_into_a_missing_directory_is_bad_input(run: Cli, tmp_path: Path) -> None:
    line = failed(run("keys", "generate", "-o", str(tmp_path / "no" / "such.key")), 2)
    assert "cannot create" in line


# --- keys fingerprint ------------------------------------------------------------------


def test_fingerprint_of_a_recipient_a_list_and_a_recipients_file(
        run: Cli, tmp_path: Path) -> None:
    _, ops = identity_file(tmp_path / "ops.key")
    _, dr = identity_file(tmp_path / "dr.key")
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# ops\n{ops}\n# dr\n{dr}\n")
    expected = [{"kind": "recipient", "fingerprint": fingerprint(ops)},
                {"kind": "recipient", "fingerprint": fingerprint(dr)}]
    assert ok_json(run("keys", "fingerprint", ops, "--json")) == expected[:1]
    assert ok_json(run("keys", "fingerprint", f"{ops},{dr}", "--json")) == expected
    assert ok_json(run("keys", "fingerprint", str(listed), "--json")) == expected
    table = run("keys", "fingerprint", str(listed))
    assert table.exit_code == 0, table.output
    assert table.stdout.split()[:2] == ["FINGERPRINT", "KIND"]
    assert f"{fingerprint(dr)}  recipient" in table.stdout.replace("   ", "  ")


def test_fingerprint_of_an_identity_file_never_prints_the_secret(
        run: Cli, tmp_path: Path) -> None:
    path, recipient = identity_file(tmp_path / "ops.key")
    secret = path.read_text().splitlines()[-1]
    for args in (("keys", "fingerprint", str(path)),
                 ("keys", "fingerprint", str(path), "--json")):
        result = no_secret(run(*args))
        assert result.exit_code == 0, result.output
        assert fingerprint(recipient) in result.stdout and "identity" in result.stdout
        assert secret[len(SECRET) + 1:][:8] not in result.stdout


def test_fingerprint_of_something_else_is_one_line_exit_2(run: Cli, tmp_path: Path) -> None:
    line = failed(run("keys", "fingerprint", "bob@example.test"), 2)
    assert "not an age recipient" in line and "identity file" in line
    path, _ = identity_file(tmp_path / "k")
    secret = path.read_text().splitlines()[-1]
    line = failed(no_secret(run("keys", "fingerprint", secret)), 2)
    assert "secret key" in line


def test_keys_generate_with_server_is_refused(run: Cli, tmp_path: Path) -> None:
    line = failed(run("--server", SERVER, "keys", "generate", "-o", str(tmp_path / "k")), 2)
    assert "runs only on this machine" in line
    assert not (tmp_path / "k").exists()


# --- restore --identity ----------------------------------------------------------------


def test_restore_identity_of_a_missing_file_is_a_usage_error(run: Cli, tmp_path: Path) -> None:
    result = run("restore", "20260101T000000Z-abcdef", "--name", "copy",
                 "--identity", str(tmp_path / "missing.key"))
    assert result.exit_code == 2, result.output
    assert "--identity" in result.stderr and "does not exist" in result.stderr


def test_restore_identity_with_server_is_refused_in_one_line(run: Cli, tmp_path: Path) -> None:
    path, _ = identity_file(tmp_path / "ops.key")
    line = failed(no_secret(run("--server", SERVER, "restore", "20260101T000000Z-abcdef",
                                "--name", "copy", "--identity", str(path))), 2)
    assert "--identity runs only on this machine" in line and "HOLDFAST_IDENTITY_FILE" in line


@pytest.fixture
def encrypted_world(tmp_path: Path) -> tuple[FakeWorld, Path, str]:
    """A fake world whose targets encrypt to one recipient; its identity file and a
    backed-up instance ``shop`` holding known bytes."""
    path, recipient = identity_file(tmp_path / "ops.key")
    world = fake_world(tmp_path / "world", {"HOLDFAST_AGE_RECIPIENTS": recipient})
    add_db(world, "shop", content=b"known rows " * 5000)
    return world, path, recipient


@pytest.fixture
def cli_with_settings(encrypted_world: tuple[FakeWorld, Path, str],
                      monkeypatch: pytest.MonkeyPatch, run: Cli) -> Cli:
    """As test_cli's ``cli``, but the fakes see the identity the CLI's settings carry
    (the real bootstrap builds its services from those settings)."""
    world = encrypted_world[0]

    def bootstrap(settings: Settings) -> object:
        world.services.settings.identity_file = settings.identity_file
        world.services._identities.clear()
        return world.services
    monkeypatch.setattr(CLI_MODULE, "bootstrap", bootstrap)
    return run


def test_an_encrypted_snapshot_restores_only_with_the_identity_given(
        encrypted_world: tuple[FakeWorld, Path, str], cli_with_settings: Cli) -> None:
    world, path, recipient = encrypted_world
    cli = cli_with_settings
    snapshot = ok_json(cli("backup", "shop", "--json"))
    assert snapshot["data_key"].endswith(".age")

    line = failed(cli("restore", snapshot["id"], "--name", "copy1"), 2)
    assert fingerprint(recipient) in line and "--identity FILE" in line
    restored = ok_json(no_secret(cli("restore", snapshot["id"], "--name", "copy1",
                                     "--identity", str(path), "--json")))
    assert restored["container"] == "copy1"
    assert world.docker.data_of("copy1") == world.docker.data_of("shop")

    # The identity was for that invocation only: the next one without it is refused.
    line = failed(cli("restore", snapshot["id"], "--name", "copy2"), 2)
    assert fingerprint(recipient) in line
    assert "copy2" not in {container.name for container in world.docker.containers.values()}


def test_a_wrong_identity_is_one_line_exit_2(
        encrypted_world: tuple[FakeWorld, Path, str], cli_with_settings: Cli,
        tmp_path: Path) -> None:
    world, _, recipient = encrypted_world
    stranger, _ = identity_file(tmp_path / "stranger.key")
    snapshot = ok_json(cli_with_settings("backup", "shop", "--json"))
    line = failed(no_secret(cli_with_settings("restore", snapshot["id"], "--name", "copy",
                                              "--identity", str(stranger))), 2)
    assert str(stranger) in line and fingerprint(recipient) in line
    assert "copy" not in {container.name for container in world.docker.containers.values()}
