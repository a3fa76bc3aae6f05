"""Encrypted snapshots of a real PostgreSQL through the ``holdfast`` CLI and daemon:
the stored object (a local file, an S3 object in moto) is age ciphertext holding
none of the known rows, its manifest lists the recipients' fingerprints and no key,
a restore without an identity or with a wrong one is refused in one line before
anything is created, the right identity restores the rows exactly, and
``holdfast.encrypt=false`` is refused while the target requires encryption. The
daemon restores with ``HOLDFAST_IDENTITY_FILE`` and refuses without it, and no
secret key ever reaches its log or its API answers."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import zstandard
from docker.models.containers import Container

from backup.encryption import fingerprint, load_identities
from tests.harness.daemon import Daemon
from tests.harness.docker_fixtures import PostgresFactory, psql
from tests.integration.conftest import (
    DockerCleanup,
    Holdfast,
    container_exists,
    volume_exists,
)
from tests.integration.conftest import fingerprint as rows_of
from tests.integration.test_s3_roundtrip import (  # noqa: F401  (s3: a fixture)
    PREFIX,
    bucket_keys,
    s3,
)

pytestmark = pytest.mark.docker

AGE_HEADER = b"age-encryption.org/v1\n"
SECRET = "AGE-SECRET-KEY-"
MARKERS = (b"@plaintext-marker.example", b"MARKER-hf-enc-", b"holder-12345@")
SEED = ("CREATE TABLE ledger (id int PRIMARY KEY, owner text NOT NULL, note text NOT NULL);"
        "INSERT INTO ledger SELECT g, 'holder-' || g || '@plaintext-marker.example', "
        "'MARKER-hf-enc-' || md5(g::text) FROM generate_series(1, 20000) g")


class Keys:
    """Two recipients (an age identity made by ``holdfast keys generate`` and an SSH
    ed25519 key) and a stranger's age identity, in files under ``directory``."""

    def __init__(self, holdfast: Holdfast, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ops = directory / "ops.key"
        self.ops_recipient = holdfast.json("keys", "generate", "-o", str(self.ops))["recipient"]
        self.stranger = directory / "stranger.key"
        holdfast.json("keys", "generate", "-o", str(self.stranger))
        self.ssh = directory / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dr",
                        "-f", str(self.ssh)], check=True)
        self.ssh_recipient = self.ssh.with_suffix(".pub").read_text().strip()

    @property
    def recipients(self) -> str:
        return f"{self.ops_recipient},{self.ssh_recipient}"

    @property
    def fingerprints(self) -> list[str]:
        return [fingerprint(self.ops_recipient), fingerprint(self.ssh_recipient)]


@pytest.fixture
def keys(holdfast: Holdfast, tmp_path: Path) -> Keys:
    return Keys(holdfast, tmp_path / "keys")


def seeded(factory: PostgresFactory, **labels: str) -> tuple[Container, str]:
    name = f"enc-{secrets.token_hex(3)}"
    source = factory(labels={"holdfast.name": name, **labels})
    psql(source, SEED)
    return source, name


def assert_ciphertext_of_the_rows(stored: bytes, identity: Path) -> None:
    """``stored`` is age ciphertext with none of the known rows in it, and decrypting
    it (then zstd) does give them: the search could have found them."""
    assert stored.startswith(AGE_HEADER)
    for marker in MARKERS:
        assert marker not in stored
    compressed = b"".join(load_identities(identity).decrypt([stored], "the stored object"))
    plain = zstandard.ZstdDecompressor().decompressobj().decompress(compressed)
    for marker in MARKERS:
        assert marker in plain
    for at in range(0, len(compressed) - 64, max(1, len(compressed) // 16)):
        assert compressed[at:at + 64] not in stored  # not the zstd stream in the clear


def assert_no_key_in(text: str, keys: Keys) -> None:
    assert SECRET not in text and "PRIVATE KEY" not in text
    assert keys.ops_recipient not in text and keys.ssh_recipient.split()[1] not in text


def test_a_local_encrypted_round_trip_needs_the_right_identity(
    holdfast: Holdfast, keys: Keys, postgres_container_factory: PostgresFactory,
    docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    source, name = seeded(postgres_container_factory)
    expected = rows_of(source, "appdb")
    assert expected["tables"]["public.ledger"].startswith("20000:")
    env = {"HOLDFAST_AGE_RECIPIENTS": keys.recipients}

    snapshot = holdfast.json("backup", name, env=env)
    assert snapshot["status"] == "complete", snapshot
    stored_path = holdfast.snapshots_dir / name / snapshot["id"] / "data.hfa.zst.age"
    stored = stored_path.read_bytes()
    assert len(stored) == snapshot["size_bytes"]
    assert hashlib.sha256(stored).hexdigest() == snapshot["sha256"]
    assert not (stored_path.parent / "data.hfa.zst").exists()
    assert_ciphertext_of_the_rows(stored, keys.ops)

    manifest_text = (stored_path.parent / "manifest.json").read_text()
    manifest = json.loads(manifest_text)
    assert manifest["encryption"] == "age-v1"
    assert manifest["recipients"] == keys.fingerprints
    assert manifest["sha256"] == snapshot["sha256"]
    assert_no_key_in(manifest_text, keys)
    for path in holdfast.catalog_files():
        assert SECRET.encode() not in path.read_bytes()

    # No identity: one line naming both recipients, and nothing created.
    copy = docker_cleanup.restored(f"{name}-copy")
    _, line = holdfast.fail("restore", snapshot["id"], "--name", copy, code=2)
    assert all(print_ in line for print_ in keys.fingerprints), line
    assert "--identity" in line
    assert not container_exists(docker_client, copy)
    assert not volume_exists(docker_client, f"{copy}-data")

    # A stranger's identity: one clear line, nothing created.
    _, line = holdfast.fail("restore", snapshot["id"], "--name", copy,
                            "--identity", str(keys.stranger), code=2)
    assert str(keys.stranger) in line and "does not open" in line
    assert not container_exists(docker_client, copy)
    assert not volume_exists(docker_client, f"{copy}-data")

    # Each recipient's identity restores the rows exactly.
    for identity, restored in ((keys.ops, copy),
                               (keys.ssh, docker_cleanup.restored(f"{name}-dr"))):
        result = holdfast.json("restore", snapshot["id"], "--name", restored,
                               "--identity", str(identity))
        assert result["container"] == restored
        assert rows_of(docker_client.containers.get(restored), "appdb") == expected
    for call in holdfast.calls:
        assert SECRET not in call.stdout + call.stderr


def test_encrypt_false_is_refused_while_recipients_are_set(
    holdfast: Holdfast, keys: Keys, postgres_container_factory: PostgresFactory,
) -> None:
    _, name = seeded(postgres_container_factory, **{"holdfast.encrypt": "false"})
    env = {"HOLDFAST_AGE_RECIPIENTS": keys.ops_recipient}
    _, line = holdfast.fail("backup", name, code=2, env=env)
    assert "holdfast.encrypt=false" in line and "HOLDFAST_AGE_RECIPIENTS" in line, line
    assert not (holdfast.snapshots_dir / name).exists()
    assert holdfast.json("snapshots", name, env=env) == []

    [view] = [v for v in holdfast.json("instances", env=env) if v["name"] == name]
    assert any("holdfast.encrypt=false" in error and "HOLDFAST_AGE_RECIPIENTS" in error
               for error in view["errors"]), view
    [plain] = [v for v in holdfast.json("instances") if v["name"] == name]
    assert plain["errors"] == []  # without recipients the label is no problem


def test_an_encrypted_round_trip_through_s3(
    holdfast: Holdfast, keys: Keys, postgres_container_factory: PostgresFactory,
    docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
    s3: tuple[Any, str, dict[str, str]],  # noqa: F811  (test_s3_roundtrip's fixture)
) -> None:
    client, bucket, env = s3
    env = {**env, "HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS": keys.ops_recipient}
    source, name = seeded(postgres_container_factory, **{"holdfast.target": "offsite"})
    expected = rows_of(source, "appdb")

    snapshot = holdfast.json("backup", name, env=env)
    assert (snapshot["status"], snapshot["target"]) == ("complete", "offsite")
    data_key = f"{PREFIX}/{name}/{snapshot['id']}/data.hfa.zst.age"
    manifest_key = f"{PREFIX}/{name}/{snapshot['id']}/manifest.json"
    assert bucket_keys(client, bucket) == [data_key, manifest_key]
    stored = client.get_object(Bucket=bucket, Key=data_key)["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == snapshot["sha256"]
    assert_ciphertext_of_the_rows(stored, keys.ops)
    manifest_text = client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read().decode()
    assert json.loads(manifest_text)["recipients"] == [fingerprint(keys.ops_recipient)]
    assert_no_key_in(manifest_text, keys)

    restored = docker_cleanup.restored(f"{name}-copy")
    holdfast.json("restore", snapshot["id"], "--name", restored, "--identity", str(keys.ops),
                  env=env)
    assert rows_of(docker_client.containers.get(restored), "appdb") == expected


# --- the daemon --------------------------------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    made = Daemon(tmp_path / "daemon")
    yield made
    made.close()


def test_the_daemon_restores_with_its_identity_file_and_refuses_without(
    daemon: Daemon, holdfast: Holdfast, keys: Keys,
    postgres_container_factory: PostgresFactory, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    scope = f"enc-scope-{secrets.token_hex(3)}"
    source, name = seeded(postgres_container_factory, **{"holdfast.scope": scope})
    expected = rows_of(source, "appdb")
    daemon.env.update(HOLDFAST_SCOPE=scope, HOLDFAST_AGE_RECIPIENTS=keys.recipients)
    answers: list[str] = []

    daemon.start().wait_ready(timeout=60)  # the public recipients are all a backup needs
    daemon.wait_for(lambda: name in daemon.instance_names(), 60, "discovery to list it")
    job = daemon.wait_job(daemon.start_backup(name)["id"])
    assert job["status"] == "succeeded", job
    snapshot_id = job["result"]["id"]
    answers.append(json.dumps(job))

    copy = docker_cleanup.restored(f"{name}-copy")
    refused = daemon.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": copy})
    answers.append(refused.text)
    assert refused.status_code == 400, refused.text
    reason = refused.json()["error"]
    assert "\n" not in reason and "HOLDFAST_IDENTITY_FILE" in reason
    assert all(print_ in reason for print_ in keys.fingerprints), reason
    assert not container_exists(docker_client, copy)
    assert daemon.stop() == 0

    daemon.start(env={"HOLDFAST_IDENTITY_FILE": str(keys.ssh)}).wait_ready(timeout=60)
    accepted = daemon.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": copy})
    assert accepted.status_code == 202, accepted.text
    job = daemon.wait_job(accepted.json()["id"])
    answers += [accepted.text, json.dumps(job),
                daemon.get(f"/v1/snapshots/{snapshot_id}").text, daemon.get("/v1/jobs").text]
    assert job["status"] == "succeeded", job
    assert rows_of(docker_client.containers.get(copy), "appdb") == expected
    assert daemon.stop() == 0

    for text in (*answers, daemon.log_text()):
        assert SECRET not in text and "PRIVATE KEY" not in text
