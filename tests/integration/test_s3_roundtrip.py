"""Postgres -> S3 -> a fresh container, against moto's real HTTP S3 endpoint,
driven through the CLI; data compared, bucket contents inspected."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard

from tests.harness.docker_fixtures import psql
from tests.integration.conftest import (
    DockerCleanup,
    Holdfast,
    container_exists,
    fingerprint,
    volume_exists,
)
from tests.integration.test_cli_postgres import flip_near_the_middle

pytestmark = pytest.mark.docker

PREFIX = "backups/prod"


def s3_env(endpoint: str, bucket: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
            "HOLDFAST_TARGET_OFFSITE": f"s3://{bucket}/{PREFIX}"}


def bucket_keys(client: Any, bucket: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def s3(moto_server: Any, s3_bucket: str) -> tuple[Any, str, dict[str, str]]:
    client = boto3.client("s3", endpoint_url=moto_server.endpoint, region_name="us-east-1",
                          aws_access_key_id="testing-key", aws_secret_access_key="testing-secret")
    return client, s3_bucket, s3_env(moto_server.endpoint, s3_bucket)


def test_postgres_to_s3_and_back_into_a_fresh_container(
    holdfast: Holdfast, postgres_container_factory: Any, docker_client: Any,
    docker_cleanup: DockerCleanup, s3: tuple[Any, str, dict[str, str]],
) -> None:
    client, bucket, env = s3
    name = f"s3src-{secrets.token_hex(3)}"
    source = postgres_container_factory(labels={"holdfast.name": name,
                                                "holdfast.target": "offsite"})
    psql(source, "CREATE TABLE parts (id int PRIMARY KEY, label text, price numeric);"
                 "INSERT INTO parts SELECT g, md5(g::text), g / 7.0 "
                 "FROM generate_series(1, 120000) g")
    expected = fingerprint(source, "appdb")

    snapshot = holdfast.json("backup", name, env=env)
    assert (snapshot["status"], snapshot["target"]) == ("complete", "offsite")
    data_key = f"{PREFIX}/{name}/{snapshot['id']}/data.hfa.zst"
    assert bucket_keys(client, bucket) == [data_key,
                                           f"{PREFIX}/{name}/{snapshot['id']}/manifest.json"]
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads")
    stored = client.get_object(Bucket=bucket, Key=data_key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == snapshot["sha256"]
    assert len(stored) == snapshot["size_bytes"]
    manifest = client.get_object(Bucket=bucket,
                                 Key=f"{PREFIX}/{name}/{snapshot['id']}/manifest.json")
    assert "s3cret-test-pw" not in manifest["Body"].read().decode()

    restored = docker_cleanup.restored(f"{name}-copy")
    result = holdfast.json("restore", snapshot["id"], "--name", restored, env=env)
    assert result["container"] == restored
    assert fingerprint(docker_client.containers.get(restored), "appdb") == expected

    # The catalog comes back from the manifests in the bucket alone.
    for path in holdfast.catalog_files():
        path.unlink()
    report = holdfast.json("catalog", "rebuild", env=env)
    assert report["targets"]["offsite"] == 1 and report["added"] == 1
    rebuilt = holdfast.json("snapshots", name, env=env)
    assert [(s["id"], s["sha256"], s["target"]) for s in rebuilt] == \
        [(snapshot["id"], snapshot["sha256"], "offsite")]


def damage_the_framing(blob: bytes, member: str) -> bytes:
    """The object with the first record of ``member`` given a kind no archive has,
    compressed again: zstd decodes it without complaint and only the archive's
    framing (and the manifest's sha256) can tell."""
    data = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(blob))
    at = data.find(member.encode()) + len(member)
    assert data[at:at + 1] == b"D", "the member's first record should follow its name"
    data[at] = 0
    return zstandard.ZstdCompressor().compress(bytes(data))


def damage_the_zstd_stream(blob: bytes, scratch: Path) -> bytes:
    """The object with bytes inverted where zstd itself rejects the block."""
    path = scratch / "data.hfa.zst"
    path.write_bytes(blob)
    flip_near_the_middle(path, zstd_notices=True)
    return path.read_bytes()


# Where damage falls decides which check trips first; each kind is made on purpose,
# since random damage made the reported reason vary from run to run.
@pytest.mark.parametrize("damage", ["zstd", "framing"])
def test_corrupt_object_in_s3_fails_the_restore_and_leaves_nothing(
    holdfast: Holdfast, postgres_container_factory: Any, docker_client: Any,
    docker_cleanup: DockerCleanup, s3: tuple[Any, str, dict[str, str]], tmp_path: Path,
    damage: str,
) -> None:
    client, bucket, env = s3
    name = f"s3bad-{secrets.token_hex(3)}"
    source = postgres_container_factory(labels={"holdfast.name": name,
                                                "holdfast.target": "offsite"})
    psql(source, "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 50000) g")
    snapshot = holdfast.json("backup", name, env=env)
    key = f"{PREFIX}/{name}/{snapshot['id']}/data.hfa.zst"
    blob = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    damaged = damage_the_framing(blob, "db/appdb") if damage == "framing" else \
        damage_the_zstd_stream(blob, tmp_path)
    client.put_object(Bucket=bucket, Key=key, Body=damaged)

    target = docker_cleanup.restored(f"{name}-copy")
    proc, line = holdfast.fail("restore", snapshot["id"], "--name", target, env=env)
    assert "corrupt" in line.replace(target, "NEW").lower(), proc.stderr
    assert not container_exists(docker_client, target)
    assert not volume_exists(docker_client, f"{target}-data")


def test_retention_on_s3_and_targets_check(
    holdfast: Holdfast, postgres_container_factory: Any, s3: tuple[Any, str, dict[str, str]],
) -> None:
    client, bucket, env = s3
    name = f"s3keep-{secrets.token_hex(3)}"
    postgres_container_factory(labels={"holdfast.name": name, "holdfast.target": "offsite",
                                       "holdfast.retention": "last=1"})
    holdfast.json("backup", name, env=env)
    newest = holdfast.json("backup", name, env=env)
    assert bucket_keys(client, bucket) == [f"{PREFIX}/{name}/{newest['id']}/data.hfa.zst",
                                           f"{PREFIX}/{name}/{newest['id']}/manifest.json"]

    checks = holdfast.json("targets", "check", env=env)
    assert {c["name"]: c["ok"] for c in checks} == {"local": True, "offsite": True}
    assert bucket_keys(client, bucket)[0].startswith(f"{PREFIX}/{name}/")  # probe removed

    missing = {**env, "HOLDFAST_TARGET_GONE": "s3://no-such-bucket-holdfast/x"}
    proc = holdfast.run("targets", "check", "--json", env=missing)
    assert proc.returncode == 1
    gone = next(c for c in json.loads(proc.stdout) if c["name"] == "gone")
    assert not gone["ok"] and "no-such-bucket-holdfast" in gone["error"]
    assert "testing-secret" not in proc.stdout + proc.stderr
