"""The target check against real storage: a ``file://`` directory and moto's S3
HTTP server (tests/harness/s3_fixtures.py). Encrypted backups are damaged
behind Holdfast's back (written straight to the directory or through a plain
boto3 client): an orphan, a truncated and a corrupted object are each reported
as such and the whole snapshots are not; a restore of the corrupted one still
fails as corrupt."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from backup.encryption import new_identity
from backup.errors import CorruptSnapshot
from service.usecases import restores
from service.usecases.integrity import verify_snapshot, verify_target
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.s3_fixtures import MotoEndpoint, s3_client
from tests.usecases.support import add_db, objects, take_backup

RawPut = Callable[[str, bytes], None]
"""Write an object's bytes straight into the target, bypassing Holdfast."""


@pytest.fixture(params=["file", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, RawPut]:
    """The target's URL and a raw writer into it."""
    if request.param == "file":
        root = tmp_path / "snapshots"

        def put_file(key: str, data: bytes) -> None:
            path = root.joinpath(*key.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return root.as_uri(), put_file
    endpoint: MotoEndpoint = request.getfixturevalue("s3_env")
    bucket: str = request.getfixturevalue("s3_bucket")
    client = s3_client(endpoint.endpoint)

    def put_s3(key: str, data: bytes) -> None:
        client.put_object(Bucket=bucket, Key=f"verify/{key}", Body=data)
    return f"s3://{bucket}/verify", put_s3


@pytest.fixture
def world(tmp_path: Path, target: tuple[str, RawPut]) -> FakeWorld:
    text, recipient = new_identity()
    (tmp_path / "identity").write_text(text)
    return fake_world(tmp_path / "world", {
        "HOLDFAST_TARGET_LOCAL": target[0], "HOLDFAST_AGE_RECIPIENTS": recipient,
        "HOLDFAST_IDENTITY_FILE": str(tmp_path / "identity")})


def test_orphan_truncated_and_corrupted_objects_are_each_reported(
        world: FakeWorld, target: tuple[str, RawPut]) -> None:
    raw_put = target[1]
    for name in ("shop", "crm", "blog"):
        add_db(world, name)
    whole, short, corrupt = (take_backup(world, name) for name in ("shop", "crm", "blog"))
    stored = objects(world)
    assert verify_target(world.services, "local").whole
    raw_put(short.data_key, stored[short.data_key][:-64])
    damaged = bytearray(stored[corrupt.data_key])
    damaged[len(damaged) // 2] ^= 0x20
    raw_put(corrupt.data_key, bytes(damaged))
    raw_put("crm/stray/leftover.bin", b"no manifest claims this")

    report = verify_target(world.services, "local")
    assert {(p.kind, p.key) for p in report.problems} == {
        ("short", short.data_key), ("corrupt", corrupt.data_key),
        ("orphan", "crm/stray/leftover.bin")}
    by_id = {r.snapshot_id: r for r in report.snapshots}
    assert by_id[whole.id].whole and by_id[whole.id].fully_checked
    assert by_id[short.id].stored_size == len(stored[short.data_key]) - 64

    assert verify_snapshot(world.services, corrupt.id).problem() == "corrupt"
    with pytest.raises(CorruptSnapshot):
        restores.run_restore(world.services, corrupt.id, "blog-copy")
    assert "blog-copy" not in {c.name for c in world.docker.containers.values()}
