"""The ``s3://`` target runs the shared storage contract against moto's HTTP server,
plus its own checks: multipart uploads, the part-size rule, an endpoint outage in
the middle of an upload, configuration and credential errors, and the per-object
options (encryption, storage class, tags)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from backup.errors import (
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageMisconfigured,
    StoragePermissionDenied,
    StorageUnavailable,
)
from backup.storage import storage_from_url
from backup.storage.s3 import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    S3Storage,
    max_object_size,
    part_size_for,
)
from tests.contract.storage_contract import Boom, Leftovers, StorageContract
from tests.harness.s3_fixtures import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    MotoEndpoint,
    s3_client,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB


def make_storage(bucket: str, options: str = "part_size=5MiB&concurrency=2",
                 prefix: str = "some/prefix") -> S3Storage:
    target = storage_from_url("s3", f"s3://{bucket}/{prefix}?{options}")
    assert isinstance(target, S3Storage)
    return target


def bucket_contents(endpoint: str, bucket: str) -> list[str]:
    """Every object key in the whole bucket and every unfinished multipart upload."""
    client = s3_client(endpoint)
    found = [item["Key"]
             for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
             for item in page.get("Contents", ())]
    found += [f"unfinished-upload:{upload['Key']}"
              for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
              for upload in page.get("Uploads", ())]
    return sorted(found)


def irregular_chunks(total: int, seed: int = 7) -> Iterator[bytes]:
    """Chunks of uneven sizes (1 byte to ~3 MiB, some empty) adding up to ``total``."""
    sizes = [1, 0, 3 * MiB - 17, 65_536, 1_000_003, 0, 2 * MiB + 5, 777, 4 * MiB + 1]
    sent, index = 0, 0
    while sent < total:
        size = min(sizes[index % len(sizes)], total - sent)
        index += 1
        block = hashlib.sha256(f"{seed}:{index}".encode()).digest()
        yield block * (size // 32) + b"z" * (size % 32)
        sent += size


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3_bucket: str) -> S3Storage:
        return make_storage(s3_bucket)

    @pytest.fixture
    def leftovers(self, s3_env: MotoEndpoint, s3_bucket: str) -> Leftovers:
        return lambda: bucket_contents(s3_env.endpoint, s3_bucket)


# --- multipart -------------------------------------------------------------------------


def test_multipart_round_trip(s3_env: MotoEndpoint, s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    total = 23 * MiB + 12_345
    expected = hashlib.sha256()
    for chunk in irregular_chunks(total):
        expected.update(chunk)

    info = storage.put("inst/snap/data.hfa.zst", irregular_chunks(total))

    assert info.size == total and info.modified is not None
    head = s3_client(s3_env.endpoint).head_object(Bucket=s3_bucket,
                                                  Key="some/prefix/inst/snap/data.hfa.zst")
    assert head["ETag"].strip('"').endswith("-5")  # 5 + 5 + 5 + 5 + 3 MiB: five parts
    assert head["ContentLength"] == total
    digest = hashlib.sha256()
    with storage.open("inst/snap/data.hfa.zst") as stream:
        for piece in stream:
            assert len(piece) <= MiB
            digest.update(piece)
    assert digest.hexdigest() == expected.hexdigest()
    assert [(i.key, i.size) for i in storage.list()] == [("inst/snap/data.hfa.zst", total)]
    assert bucket_contents(s3_env.endpoint, s3_bucket) == ["some/prefix/inst/snap/data.hfa.zst"]


def test_exactly_one_part_is_a_single_put(s3_env: MotoEndpoint, s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    storage.put("i/one", iter([b"a" * MiB] * 5))  # exactly part_size
    head = s3_client(s3_env.endpoint).head_object(Bucket=s3_bucket, Key="some/prefix/i/one")
    assert "-" not in head["ETag"] and head["ContentLength"] == 5 * MiB


def test_parts_in_flight_and_memory_are_bounded(s3_env: MotoEndpoint, s3_bucket: str) -> None:
    """Slow part uploads (a botocore event hook sleeps) make the pool the
    bottleneck; the stream must then be read no further ahead than the
    memory bound, part_size * (concurrency + 1)."""
    storage = make_storage(s3_bucket, "part_size=5MiB&concurrency=2")
    client = storage._client()
    lock = threading.Lock()
    state = {"in_flight": 0, "max_in_flight": 0, "done_bytes": 0, "max_ahead": 0}

    def before_send(request: Any, **_: Any) -> None:
        with lock:
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        time.sleep(0.15)

    def before_call(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["holdfast_test_size"] = len(params["Body"])

    def after_call(context: dict[str, Any], **_: Any) -> None:
        with lock:
            state["in_flight"] -= 1
            state["done_bytes"] += context["holdfast_test_size"]

    client.meta.events.register("before-parameter-build.s3.UploadPart", before_call)
    client.meta.events.register("before-send.s3.UploadPart", before_send)
    client.meta.events.register("after-call.s3.UploadPart", after_call)

    def stream() -> Iterator[bytes]:
        handed = 0
        for _ in range(40):
            with lock:
                state["max_ahead"] = max(state["max_ahead"], handed - state["done_bytes"])
            yield b"m" * MiB
            handed += MiB

    try:
        assert storage.put("i/slow", stream()).size == 40 * MiB
    finally:
        client.meta.events.unregister("before-parameter-build.s3.UploadPart", before_call)
        client.meta.events.unregister("before-send.s3.UploadPart", before_send)
        client.meta.events.unregister("after-call.s3.UploadPart", after_call)
    assert state["max_in_flight"] == 2
    assert state["max_ahead"] <= 5 * MiB * (2 + 1)


def test_stream_error_in_multipart_aborts_and_reraises(s3_env: MotoEndpoint,
                                                       s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)

    def breaking() -> Iterator[bytes]:
        yield from (b"q" * MiB for _ in range(12))  # two parts sent, a third filling
        raise Boom("the dump broke")

    with pytest.raises(Boom):
        storage.put("i/broken", breaking())
    assert bucket_contents(s3_env.endpoint, s3_bucket) == []


def test_keyboard_interrupt_aborts_the_upload(s3_env: MotoEndpoint, s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)

    def interrupted() -> Iterator[bytes]:
        yield from (b"k" * MiB for _ in range(11))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.put("i/interrupted", interrupted())
    assert bucket_contents(s3_env.endpoint, s3_bucket) == []


# --- the part-size rule ----------------------------------------------------------------


def test_part_size_doubles_every_thousand_parts() -> None:
    base = 5 * MiB
    assert [part_size_for(n, base) for n in (1, 1000, 1001, 2000, 2001, 9001, 10_000)] == [
        base, base, 2 * base, 2 * base, 4 * base, 512 * base, 512 * base]
    assert part_size_for(10_000, 16 * MiB) == MAX_PART_SIZE  # 8 GiB capped at S3's 5 GiB
    with pytest.raises(ValueError):
        part_size_for(0, base)


@pytest.mark.parametrize("base", [MIN_PART_SIZE, 8 * MiB, 16 * MiB, 64 * MiB, MAX_PART_SIZE])
def test_ten_thousand_parts_cover_the_documented_maximum(base: int) -> None:
    covered = sum(part_size_for(n, base) for n in range(1, MAX_PARTS + 1))
    assert covered > 5 * GiB
    assert all(MIN_PART_SIZE <= part_size_for(n, base) <= MAX_PART_SIZE
               for n in range(1, MAX_PARTS + 1))
    assert max_object_size(base) == min(covered, MAX_OBJECT_SIZE)


def test_documented_maximum_object_sizes() -> None:
    # The module docstring's figures: 4.88 TiB at the 5 MiB minimum, S3's 5 TiB from 16 MiB.
    assert max_object_size(MIN_PART_SIZE) == 1000 * 5 * MiB * 1023
    assert 4.87 * TiB < max_object_size(MIN_PART_SIZE) < 4.88 * TiB
    assert max_object_size(16 * MiB) == 5 * TiB
    # Without growth, 10,000 parts of 5 MiB would stop at ~48.8 GiB.
    assert 48 * GiB < MAX_PARTS * MIN_PART_SIZE < 49 * GiB


# --- outages and cleanup ----------------------------------------------------------------


def test_endpoint_outage_mid_upload_aborts_once_it_is_back(s3_env: MotoEndpoint,
                                                           s3_bucket: str) -> None:
    """The server goes away after two parts and comes back ~1 s later. With no
    botocore retries (retries=0) the next part fails at once; ``put`` raises
    StorageUnavailable, and its abort, retried with back-off, goes through once the
    endpoint is back: the test relies on that abort, not on ``discard_incomplete``."""
    storage = make_storage(s3_bucket, "part_size=5MiB&concurrency=2&retries=0")
    client = s3_client(s3_env.endpoint)
    restart = threading.Timer(1.0, s3_env.start)
    stored_parts: list[int] = []

    def stream() -> Iterator[bytes]:
        for index in range(30):
            if index == 11:  # parts 1 and 2 were handed to the pool at 5 and 10 MiB
                stored_parts.extend(wait_for_parts(client, s3_bucket, count=2))
                s3_env.stop()
                restart.start()
            yield b"o" * MiB

    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            storage.put("inst/snap/data", stream())
        elapsed = time.monotonic() - started
    finally:
        if restart.is_alive() or not restart.finished.is_set():
            restart.join(timeout=10)
    message = str(caught.value)
    assert "\n" not in message and "127.0.0.1" in message
    assert FAKE_ACCESS_KEY not in message and FAKE_SECRET_KEY not in message
    assert stored_parts == [1, 2]  # the server held two parts when it went down
    assert not restart.is_alive() and s3_env.running
    assert elapsed >= 1.0  # put waited for the endpoint to come back to abort
    assert bucket_contents(s3_env.endpoint, s3_bucket) == []
    assert storage.discard_incomplete() == 0


def test_endpoint_lost_before_completion_aborts_the_upload(s3_env: MotoEndpoint,
                                                           s3_bucket: str) -> None:
    """Every part is stored, then the endpoint goes down just as the completion is
    sent (a botocore event hook stops the server) and comes back ~1 s later."""
    storage = make_storage(s3_bucket, "part_size=5MiB&concurrency=2&retries=0")
    restart = threading.Timer(1.0, s3_env.start)

    def endpoint_goes_down(**_: Any) -> None:
        s3_env.stop()
        restart.start()

    events = storage._client().meta.events
    events.register("before-send.s3.CompleteMultipartUpload", endpoint_goes_down)
    try:
        with pytest.raises(StorageUnavailable) as caught:
            storage.put("inst/snap/data", (b"c" * MiB for _ in range(12)))
    finally:
        events.unregister("before-send.s3.CompleteMultipartUpload", endpoint_goes_down)
        if restart.is_alive() or not restart.finished.is_set():
            restart.join(timeout=10)
    assert "complete the upload of inst/snap/data" in str(caught.value)
    assert bucket_contents(s3_env.endpoint, s3_bucket) == []


def wait_for_parts(client: Any, bucket: str, count: int, timeout: float = 10.0) -> list[int]:
    """Wait until the bucket's only multipart upload has ``count`` parts stored."""
    deadline = time.monotonic() + timeout
    while True:
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        if len(uploads) == 1:
            parts = client.list_parts(Bucket=bucket, Key=uploads[0]["Key"],
                                      UploadId=uploads[0]["UploadId"]).get("Parts", [])
            if len(parts) >= count:
                return [part["PartNumber"] for part in parts]
        assert time.monotonic() < deadline, "the parts never reached the server"
        time.sleep(0.02)


def test_discard_incomplete_aborts_uploads_under_the_prefix(s3_env: MotoEndpoint,
                                                            s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    client = s3_client(s3_env.endpoint)
    for key in ("some/prefix/a/1/data", "some/prefix/b/2/data", "some/prefix/b/2/data"):
        client.create_multipart_upload(Bucket=s3_bucket, Key=key)  # crash leftovers
    client.create_multipart_upload(Bucket=s3_bucket, Key="other/prefix/x")
    storage.put("kept", [b"complete objects are untouched"])

    assert storage.discard_incomplete() == 3
    assert bucket_contents(s3_env.endpoint, s3_bucket) == [
        "some/prefix/kept", "unfinished-upload:other/prefix/x"]
    assert storage.discard_incomplete() == 0


def test_delete_many_batches_and_ignores_missing_keys(s3_env: MotoEndpoint,
                                                      s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    client = s3_client(s3_env.endpoint)
    keys = [f"i/s{n:04d}/data" for n in range(1203)]
    for key in keys[::100]:  # 13 exist; the other 1,190 are missing, which is no error
        client.put_object(Bucket=s3_bucket, Key=f"some/prefix/{key}", Body=b"")
    client.put_object(Bucket=s3_bucket, Key="some/prefix/keep/this", Body=b"")
    batches: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        batches.append(len(params["Delete"]["Objects"]))

    storage._client().meta.events.register("before-parameter-build.s3.DeleteObjects", count)
    storage.delete_many(iter([*keys, "never/existed"]))
    assert batches == [1000, 204]
    assert [info.key for info in storage.list()] == ["keep/this"]
    with pytest.raises(InvalidName):
        storage.delete_many(["../escape"])


# --- configuration and credentials --------------------------------------------------------


def test_missing_bucket_is_a_configuration_error(s3_env: MotoEndpoint) -> None:
    storage = make_storage("holdfast-no-such-bucket")
    for attempt in (storage.check_writable,
                    lambda: storage.put("a/b", [b"x"]),
                    lambda: storage.put("a/big", (b"x" * MiB for _ in range(6))),
                    lambda: storage.stat("a/b"),
                    lambda: list(storage.list())):
        with pytest.raises(StorageMisconfigured) as caught:
            attempt()
        message = str(caught.value)
        assert "\n" not in message
        assert "'holdfast-no-such-bucket' does not exist" in message
        assert "HOLDFAST_TARGET_S3" in message


@pytest.fixture
def moto_enforces_auth(s3_env: MotoEndpoint, s3_bucket: str) -> Iterator[None]:
    """Make the (shared) moto server check credentials against its IAM, through its
    own HTTP API, for one test. Depends on ``s3_bucket`` so the bucket is made
    before and removed after enforcement."""

    def reset_auth(count: str) -> None:
        request = urllib.request.Request(
            f"{s3_env.endpoint}/moto-api/reset-auth", data=count.encode(), method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


@pytest.mark.usefixtures("moto_enforces_auth")
def test_wrong_credentials_are_denied_without_leaking_them(
        s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong_key, wrong_secret = "AKIAWRONGWRONGWRONG1", "wrong-secret-must-never-be-printed-0001"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", wrong_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    storage = make_storage(s3_bucket)
    messages = []
    for attempt in (storage.check_writable,
                    lambda: storage.put("a/b", [b"x"]),
                    lambda: list(storage.list())):
        with pytest.raises(StoragePermissionDenied) as caught:
            attempt()
        messages.append(str(caught.value))
    for message in messages:
        assert "\n" not in message
        assert wrong_key not in message and wrong_secret not in message
        assert "check the AWS credentials for this target" in message
        assert repr(s3_bucket) in message
    assert "403 Forbidden" in messages[0]  # a HEAD has no body to say more
    assert "InvalidAccessKeyId" in messages[2]


def test_endpoint_region_and_addressing_come_from_the_standard_chain(
        s3_env: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore itself reads AWS_ENDPOINT_URL_S3; a custom endpoint means path style.
    client = make_storage("some-bucket")._client()
    assert client.meta.endpoint_url == s3_env.endpoint
    assert client.meta.config.s3["addressing_style"] == "path"
    # retries=5 (the default) are retries after the first attempt: 6 in all.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}
    assert client.meta.config.max_pool_connections == 2 + 4
    # ... and AWS_ENDPOINT_URL; with no region configured, us-east-1.
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    client = make_storage("some-bucket", "addressing=virtual")._client()
    assert client.meta.endpoint_url == "http://127.0.0.1:1"
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3["addressing_style"] == "virtual"
    # AWS itself: auto addressing, the configured region.
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    client = make_storage("some-bucket")._client()
    assert client.meta.endpoint_url.endswith(".amazonaws.com")
    assert client.meta.region_name == "eu-west-3"
    assert client.meta.config.s3["addressing_style"] == "auto"


def test_unreachable_endpoint_is_unavailable(s3_env: MotoEndpoint,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # A port bound but not listening refuses every connection, and nothing else
    # on the machine can take it while the test runs (a fixed port could be).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"127.0.0.1:{closed.getsockname()[1]}"
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{endpoint}")
        storage = make_storage("some-bucket", "retries=0&connect_timeout=2")
        with pytest.raises(StorageUnavailable) as caught:
            storage.check_writable()
    assert caught.value.retryable
    assert endpoint in str(caught.value) and "\n" not in str(caught.value)


def test_objects_carry_encryption_storage_class_and_instance_tag(s3_env: MotoEndpoint,
                                                                 s3_bucket: str) -> None:
    storage = make_storage(s3_bucket,
                           "part_size=5MiB&sse=AES256&storage_class=STANDARD_IA&tag_instance=true")
    client = s3_client(s3_env.endpoint)
    storage.put("pg-main/snap1/manifest.json", [b"{}"])  # one PutObject
    storage.put("pg-main/snap1/data", (b"d" * MiB for _ in range(7)))  # multipart
    for key in ("pg-main/snap1/manifest.json", "pg-main/snap1/data"):
        head = client.head_object(Bucket=s3_bucket, Key=f"some/prefix/{key}")
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA"
        tags = client.get_object_tagging(Bucket=s3_bucket, Key=f"some/prefix/{key}")["TagSet"]
        assert tags == [{"Key": "holdfast-instance", "Value": "pg-main"}]
    assert "-" in client.head_object(Bucket=s3_bucket, Key="some/prefix/pg-main/snap1/data")["ETag"]

    kms = make_storage(s3_bucket, "kms_key_id=alias/holdfast", prefix="kms")
    kms.put("i/x", [b"secret"])
    head = client.head_object(Bucket=s3_bucket, Key="kms/i/x")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith("alias/holdfast")


@pytest.mark.parametrize("url, needle", [
    ("s3://bucket/p?colour=blue", "unknown S3 option 'colour'"),
    ("s3://bucket/p?part_size=1MiB", "part_size"),
    ("s3://bucket/p?part_size=lots", "part_size"),
    ("s3://bucket/p?concurrency=0", "concurrency"),
    ("s3://bucket/p?retries=many", "retries"),
    ("s3://bucket/p?addressing=sideways", "addressing"),
    ("s3://bucket/p?sse=rot13", "sse"),
    ("s3://bucket/p?sse=AES256&kms_key_id=k", "kms_key_id"),
    ("s3://bucket/p?tag_instance=maybe", "tag_instance"),
    ("s3://bucket/p?concurrency=2&concurrency=3", "twice"),
    ("s3://bucket/../up", "prefix"),
    ("s3://x/p", "bucket name"),
    ("s3://AKIAINURL:topsecret@bucket/p", "credentials do not belong in the URL"),
])
def test_bad_urls_are_refused_in_one_line(url: str, needle: str) -> None:
    with pytest.raises(StorageMisconfigured) as caught:
        storage_from_url("s3", url)
    message = str(caught.value)
    assert needle in message and "\n" not in message
    assert "topsecret" not in message and "AKIAINURL" not in message


def test_options_are_parsed_without_any_io() -> None:
    storage = S3Storage("offsite", "s3://bucket/a/b?part_size=64MiB&concurrency=8&retries=2"
                                   "&addressing=path&storage_class=GLACIER_IR")
    assert (storage.part_size, storage.concurrency, storage.retries) == (64 * MiB, 8, 2)
    assert storage.prefix == "a/b/" and storage.bucket == "bucket"
    assert storage._s3 is None  # the client is built on first use
    assert S3Storage("x", "s3://bucket").prefix == ""
    assert S3Storage("x", "s3://bucket/p?part_size=5242880").part_size == 5 * MiB
    assert S3Storage("x", "s3://bucket/p?part_size=1gib").part_size == GiB


def test_put_refuses_to_overwrite_after_a_multipart_upload(s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    storage.put("k/big", (b"1" * MiB for _ in range(6)))
    with pytest.raises(ObjectExists):
        storage.put("k/big", (b"2" * MiB for _ in range(6)))
    with storage.open("k/big") as stream:
        assert next(stream)[:1] == b"1"
    storage.delete("k/big")
    with pytest.raises(ObjectNotFound):
        storage.stat("k/big")


def test_list_hides_keys_the_interface_cannot_name(s3_env: MotoEndpoint,
                                                   s3_bucket: str) -> None:
    client = s3_client(s3_env.endpoint)
    client.put_object(Bucket=s3_bucket, Key="some/prefix/folder/", Body=b"")  # console marker
    client.put_object(Bucket=s3_bucket, Key="some/prefix/i/ok", Body=b"1")
    client.put_object(Bucket=s3_bucket, Key="some/prefixed-sibling/x", Body=b"1")
    assert [info.key for info in make_storage(s3_bucket).list()] == ["i/ok"]


def test_errors_are_storage_errors(s3_bucket: str) -> None:
    storage = make_storage(s3_bucket)
    with pytest.raises(StorageError):
        storage.delete("never/was")


@pytest.mark.parametrize("code, status, key, expected", [
    ("NoSuchBucket", 404, "k", StorageMisconfigured),
    ("404", 404, None, StorageMisconfigured),  # HEAD bucket: no body, no code
    ("404", 404, "k", ObjectNotFound),  # HEAD object
    ("NoSuchKey", 404, "k", ObjectNotFound),
    ("AccessDenied", 403, "k", StoragePermissionDenied),
    ("InvalidAccessKeyId", 403, None, StoragePermissionDenied),
    ("SignatureDoesNotMatch", 403, "k", StoragePermissionDenied),
    ("403", 403, "k", StoragePermissionDenied),
    ("SlowDown", 503, "k", StorageUnavailable),
    ("Throttling", 400, None, StorageUnavailable),
    ("RequestLimitExceeded", 400, None, StorageUnavailable),
    ("InternalError", 500, "k", StorageUnavailable),
    ("502", 502, "k", StorageUnavailable),
    ("PermanentRedirect", 301, None, StorageMisconfigured),
    ("InvalidStorageClass", 400, "k", StorageMisconfigured),
    ("NoSuchUpload", 404, "k", StorageError),
    ("EntityTooLarge", 400, "k", StorageError),
])
def test_client_errors_translate_in_one_line(code: str, status: int, key: str | None,
                                             expected: type[StorageError]) -> None:
    from botocore.exceptions import ClientError

    storage = S3Storage("offsite", "s3://my-bucket/p")
    error = ClientError({"Error": {"Code": code, "Message": "Some\nmulti-line message"},
                         "ResponseMetadata": {"HTTPStatusCode": status}}, "SomeOperation")
    translated = storage._translate(error, "do things", key)
    assert type(translated) is expected
    message = str(translated)
    assert message.startswith("target 'offsite': ") and "\n" not in message
    assert "'my-bucket'" in message or isinstance(translated, ObjectNotFound)
    assert translated.retryable == (expected is StorageUnavailable)


def test_connection_errors_translate_to_unavailable_naming_the_host() -> None:
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    storage = S3Storage("offsite", "s3://my-bucket/p?retries=3")
    signed = "https://s3.example.com/my-bucket/k?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"
    for error in (EndpointConnectionError(endpoint_url=signed),
                  ConnectionClosedError(endpoint_url=signed),
                  ReadTimeoutError(endpoint_url=signed),
                  ConnectTimeoutError(endpoint_url=signed)):
        translated = storage._translate(error, "write part 3 of k", "k")
        assert isinstance(translated, StorageUnavailable)
        assert "X-Amz" not in str(translated) and "AKIA" not in str(translated)
        assert type(error).__name__ in str(translated) and "3 retries" in str(translated)
