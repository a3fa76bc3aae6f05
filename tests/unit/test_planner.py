"""Restore planning: names, volumes, environment and refusals, as pure data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backup.errors import InvalidName, MissingCredentials, NameTaken, VolumeInUse
from backup.types import Manifest, Mount
from restore.planner import RESTORED_FROM_LABEL, plan_restore

MOMENT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def manifest(**changes: object) -> Manifest:
    values: dict[str, object] = dict(
        snapshot_id="20261129T120000Z-abcdef", instance="billing", engine="postgres",
        data_key="billing/20261129T120000Z-abcdef/data.hfa.zst",
        data_format="holdfast-postgres-v1", compression="zstd", image="postgres:15",
        image_id="sha256:1", created_at=MOMENT, finished_at=MOMENT, size_bytes=10, raw_bytes=20,
        sha256="0" * 64, env={"POSTGRES_USER": "app", "POSTGRES_DB": "appdb"},
        secret_env=("POSTGRES_PASSWORD",),
        mounts=(Mount("/var/lib/postgresql/data", "volume", "billing-data"),),
        networks=("bridge", "backend"),
    )
    values.update(changes)
    return Manifest(**values)  # type: ignore[arg-type]


def plan(m: Manifest | None = None, **overrides: object):
    arguments: dict[str, object] = dict(
        new_name="billing-copy", default_data_paths=["/var/lib/postgresql/data"],
        secret_values={"POSTGRES_PASSWORD": "pw"}, taken_container_names={"billing"},
        existing_volumes={"billing-data"},
    )
    arguments.update(overrides)
    return plan_restore(m or manifest(), **arguments)  # type: ignore[arg-type]


def test_fresh_container_with_same_image_and_environment() -> None:
    result = plan()
    spec = result.container
    assert spec.name == "billing-copy"
    assert spec.image == "postgres:15"
    assert dict(spec.env) == {"POSTGRES_USER": "app", "POSTGRES_DB": "appdb",
                              "POSTGRES_PASSWORD": "pw"}
    assert dict(spec.volumes) == {"billing-copy-data": "/var/lib/postgresql/data"}
    assert result.volume_names == ["billing-copy-data"]
    assert spec.labels[RESTORED_FROM_LABEL] == "20261129T120000Z-abcdef"
    assert "holdfast.enable" not in spec.labels
    assert spec.networks == ("backend",)


def test_image_override() -> None:
    assert plan(image="postgres:16").container.image == "postgres:16"


def test_default_data_path_when_source_had_no_mount() -> None:
    result = plan(manifest(mounts=()), default_data_paths=["/pgdata"])
    assert dict(result.container.volumes) == {"billing-copy-data": "/pgdata"}


def test_several_mounts_get_one_fresh_volume_each() -> None:
    mounts = (Mount("/var/lib/postgresql/data", "volume"), Mount("/backups", "bind", "/srv"),
              Mount("/tmp", "tmpfs"))
    result = plan(manifest(mounts=mounts))
    assert dict(result.container.volumes) == {
        "billing-copy-backups": "/backups",
        "billing-copy-var-lib-postgresql-data": "/var/lib/postgresql/data",
    }


def test_taken_container_name_is_refused() -> None:
    with pytest.raises(NameTaken, match="billing already exists"):
        plan(new_name="billing")


def test_existing_volume_is_never_reused() -> None:
    with pytest.raises(NameTaken, match=r"billing-copy-data already exists.*--force"):
        plan(existing_volumes={"billing-copy-data"})


def test_force_reuses_an_unused_existing_volume_and_creates_the_rest() -> None:
    two = manifest(mounts=(Mount("/data", "volume", "a"), Mount("/logs", "bind", "/srv/l")))
    result = plan(two, existing_volumes={"billing-copy-data", "billing-copy-logs"},
                  force=True, volume_users={"billing-copy-logs": []})
    assert result.volume_names == ["billing-copy-data", "billing-copy-logs"]
    assert result.reused_volumes == ("billing-copy-data", "billing-copy-logs")
    fresh = plan(two, existing_volumes={"billing-copy-logs"}, force=True)
    assert fresh.reused_volumes == ("billing-copy-logs",)
    assert plan(two).reused_volumes == ()


def test_force_never_writes_under_a_container() -> None:
    with pytest.raises(VolumeInUse, match="billing-copy-data is used by container old"):
        plan(existing_volumes={"billing-copy-data"}, force=True,
             volume_users={"billing-copy-data": ["old (stopped)"]})


@pytest.mark.parametrize("name", ["", "x", "-lead", "has space", "a/b", "é"])
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        plan(new_name=name)


def test_missing_secret_is_refused_with_what_to_do() -> None:
    with pytest.raises(MissingCredentials, match="export them in Holdfast's environment"):
        plan(secret_values={})


def test_command_secrets_are_filled_in_or_reported_missing() -> None:
    redis = manifest(engine="redis", secret_env=(), env={},
                     command=("redis-server", "--requirepass", "{{secret:REDIS_PASSWORD}}"),
                     secret_args=("REDIS_PASSWORD",))
    result = plan(redis, secret_values={"REDIS_PASSWORD": "pw"})
    assert result.container.command == ("redis-server", "--requirepass", "pw")
    with pytest.raises(MissingCredentials, match="REDIS_PASSWORD"):
        plan(redis, secret_values={})
    assert plan(manifest()).container.command is None
