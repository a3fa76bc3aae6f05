"""``holdfast verify`` against real PostgreSQL snapshots: a real dump's archive is
read through every layer (its members counted: meta, globals, one per
database), plain and encrypted; a byte flipped on disk makes it exit 1 naming
sha256, an encrypted one needs --identity (exit 2, the restore's line); and
``verify --target`` finds an object left in the snapshots directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backup.encryption import new_identity
from tests.integration.conftest import Holdfast, Source, describe

pytestmark = pytest.mark.docker

DATABASES = ("appdb", "reports")


def _checks(report: dict[str, Any]) -> dict[str, str]:
    return {check["check"]: check["outcome"] for check in report["checks"]}


def test_a_real_snapshot_verifies_and_a_flipped_byte_on_disk_exits_1(
        holdfast: Holdfast, pg_source: Source) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    report = holdfast.json("verify", snapshot["id"])
    assert report["whole"] and report["fully_checked"], report
    assert _checks(report)["framing"] == "ok" and _checks(report)["decompresses"] == "ok"
    assert report["members"] >= 2 + len(DATABASES)  # meta, globals, each db
    assert report["stored_size"] == snapshot["size_bytes"]

    data = holdfast.snapshots_dir / pg_source.name / snapshot["id"] / "data.hfa.zst"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    data.write_bytes(bytes(damaged))
    proc, line = holdfast.fail("verify", snapshot["id"], code=1)
    assert line.startswith(f"holdfast: snapshot {snapshot['id']} is not whole: sha256: ")

    (holdfast.snapshots_dir / pg_source.name / "stray.bin").write_bytes(b"left behind")
    proc = holdfast.run("verify", "--target", "local", "--json")
    assert proc.returncode == 1, describe(proc)
    problems = json.loads(proc.stdout)["problems"]
    assert {(p["kind"], p["key"].rsplit("/", 1)[-1]) for p in problems} == {
        ("corrupt", "data.hfa.zst"), ("orphan", "stray.bin")}


def test_an_encrypted_real_snapshot_needs_its_identity(
        holdfast: Holdfast, pg_source: Source, tmp_path: Path) -> None:
    text, recipient = new_identity()
    identity = tmp_path / "ops.key"
    identity.write_text(text)
    env = {"HOLDFAST_AGE_RECIPIENTS": recipient}
    snapshot = holdfast.json("backup", pg_source.name, env=env)
    _, refused = holdfast.fail("verify", snapshot["id"], code=2, env=env)
    _, restore_refused = holdfast.fail("restore", snapshot["id"], "--name", "hf-it-never",
                                       code=2, env=env)
    assert refused == restore_refused and "--identity" in refused
    report = holdfast.json("verify", snapshot["id"], "--identity", str(identity), env=env)
    assert report["whole"] and report["fully_checked"] and report["encryption"] == "age-v1"
    assert _checks(report)["decrypts"] == "ok" and report["members"] >= 2 + len(DATABASES)
    unchecked = holdfast.run("verify", "--target", "local", env=env)
    assert unchecked.returncode == 0, describe(unchecked)
    assert unchecked.stdout.splitlines()[-1].endswith(
        "1 encrypted objects checked for size and sha256 only: no identity")
