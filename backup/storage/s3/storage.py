"""``S3Storage``: the :class:`~backup.storage.base.Storage` operations on one bucket
and key prefix. The URL is parsed by :mod:`.options` (no I/O in ``__init__``);
the boto3 client is built on first use from boto3's standard configuration;
``put`` hands the stream to :mod:`.upload` after checking the key is free and
checks the stored size after; every botocore error is translated by
:mod:`.errors` at the edge, so only :mod:`backup.errors` escape.
"""

from __future__ import annotations

import builtins
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backup.errors import (
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
)
from backup.storage.base import ObjectInfo, validate_key
from backup.storage.s3.errors import Where, delete_failure, translate
from backup.storage.s3.options import misconfigured, parse_url
from backup.storage.s3.upload import UploadTarget, abort_once, upload
from backup.streams import CHUNK_SIZE

DELETE_BATCH = 1_000


class S3Storage:
    scheme: ClassVar[str] = "s3"

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        location = parse_url(name, url)
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.options = location.options
        self._client_lock = threading.Lock()
        self._s3: Any = None

    def __repr__(self) -> str:
        return f"S3Storage({self.name!r}, 's3://{self.bucket}/{self.prefix}')"

    @property
    def part_size(self) -> int:
        return self.options.part_size

    @property
    def concurrency(self) -> int:
        return self.options.concurrency

    @property
    def retries(self) -> int:
        return self.options.retries

    # --- the client ------------------------------------------------------------------

    def _client(self) -> Any:
        """The boto3 client, built on first use (no I/O in ``__init__``).

        Region: ``AWS_REGION``, else botocore's own (``AWS_DEFAULT_REGION``, the
        profile), else us-east-1. botocore (≥ 1.31) reads ``AWS_ENDPOINT_URL_S3``,
        ``AWS_ENDPOINT_URL`` and the profile's ``endpoint_url`` itself; whether one
        is in force is seen from the client it builds, and decides the default
        addressing style.
        """
        with self._client_lock:
            if self._s3 is None:
                addressing = self.options.addressing
                try:
                    session = boto3.session.Session()
                    # botocore reads AWS_DEFAULT_REGION and the profile but not
                    # AWS_REGION, which the other SDKs and the AWS CLI v2 put first.
                    region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
                    client = session.client("s3", region_name=region,
                                            config=self._config(addressing or "auto"))
                    if addressing is None and not _is_aws(client.meta.endpoint_url):
                        # MinIO, Ceph and most others serve buckets under the path.
                        client = session.client("s3", region_name=region,
                                                config=self._config("path"))
                except (BotoCoreError, ClientError) as exc:
                    raise self._translate(exc, "connect to S3") from exc
                except ValueError as exc:
                    raise misconfigured(
                        self.name,
                        "the S3 endpoint (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) is not a "
                        "valid URL",
                    ) from exc
                self._s3 = client
            return self._s3

    def _config(self, addressing: str) -> Any:
        options = self.options
        return Config(
            retries={"mode": "standard", "max_attempts": options.retries},
            max_pool_connections=options.concurrency + 4,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            s3={"addressing_style": addressing},
            user_agent_extra="holdfast",
        )

    def _translate(self, exc: Exception, action: str, key: str | None = None) -> StorageError:
        client = self._s3  # the endpoint as far as known: never builds a client
        return translate(exc, action, key, Where(
            target=self.name, bucket=self.bucket, retries=self.retries,
            endpoint_url=client.meta.endpoint_url if client is not None else None,
        ))

    def _call(self, action: str, operation: str, key: str | None = None,
              **params: Any) -> dict[str, Any]:
        client = self._client()
        try:
            response: dict[str, Any] = getattr(client, operation)(Bucket=self.bucket, **params)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, action, key) from exc
        return response

    def _upload_target(self) -> UploadTarget:
        return UploadTarget(client=self._client(), bucket=self.bucket, name=self.name,
                            part_size=self.part_size, concurrency=self.concurrency,
                            write_params=self.options.write_params, translate=self._translate)

    # --- keys --------------------------------------------------------------------

    def _full_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def _head(self, key: str) -> dict[str, Any] | None:
        """HEAD an object; ``None`` if it does not exist. A HEAD has no body, so a
        missing bucket also answers 404: callers that report "not found" check
        the bucket first."""
        try:
            return self._call(f"read {key}", "head_object", key, Key=self._full_key(key))
        except ObjectNotFound:
            return None

    def _not_found(self, key: str) -> ObjectNotFound:
        self.check_writable()  # a missing bucket is a configuration error, not a missing key
        return ObjectNotFound(f"target {self.name!r}: no object {key}")

    # --- the Storage interface -----------------------------------------------------

    def check_writable(self) -> None:
        """HEAD the bucket: proves the endpoint answers, the bucket exists and the
        credentials are accepted. It stores nothing, so it cannot prove write access.

        The target's credentials need s3:ListBucket (without it S3 answers 403, not
        404, for a missing key, and ``put`` HEADs first), s3:GetObject,
        s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload,
        s3:ListBucketMultipartUploads, plus s3:PutObjectTagging with
        ``tag_instance`` and kms:GenerateDataKey/kms:Decrypt with ``sse=aws:kms``.
        """
        self._call("reach the bucket", "head_bucket")

    def put(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        full_key = self._full_key(key)
        if self._head(key) is not None:
            raise ObjectExists(f"target {self.name!r}: object {key} already exists")
        return self._upload(key, full_key, chunks)

    def replace(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        # A PUT (or a multipart upload's completion) over an existing key is
        # atomic in S3: readers see the old object until the new one is whole.
        return self._upload(key, self._full_key(key), chunks)

    def _upload(self, key: str, full_key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        size = upload(self._upload_target(), key, full_key, chunks)
        try:
            head = self._head(key)
        except StorageUnavailable:
            # Stored all the same (S3 answered the commit); only its time is unknown.
            return ObjectInfo(key=key, size=size)
        if head is None or int(head.get("ContentLength", -1)) != size:
            raise StorageError(
                f"target {self.name!r}: object {key} is not as written after upload "
                f"({size} bytes sent)"
            )
        return ObjectInfo(key=key, size=size, modified=head.get("LastModified"))

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        return self._open(key)

    @contextmanager
    def _open(self, key: str) -> Iterator[Iterator[bytes]]:
        response = self._call(f"read {key}", "get_object", key, Key=self._full_key(key))
        body = response["Body"]
        try:
            yield self._read(key, body)
        finally:
            body.close()

    def _read(self, key: str, body: Any) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(CHUNK_SIZE)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, f"read {key}", key) from exc

    def stat(self, key: str) -> ObjectInfo:
        head = self._head(key)
        if head is None:
            raise self._not_found(key)
        return ObjectInfo(key=key, size=int(head["ContentLength"]),
                          modified=head.get("LastModified"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Collected and sorted: S3 lists in UTF-8 byte order, but not every
        # S3-compatible store promises it, and the contract does.
        found: builtins.list[ObjectInfo] = []
        paginator = self._client().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[len(self.prefix):]
                    if _is_valid_key(key):  # skips console "folder/" markers and strays
                        found.append(ObjectInfo(key, int(item["Size"]), item.get("LastModified")))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, "list objects") from exc
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        # S3 deletes succeed whether or not the key exists; the contract wants to know.
        if self._head(key) is None:
            raise self._not_found(key)
        self._call(f"delete {key}", "delete_object", key, Key=self._full_key(key))

    def delete_many(self, keys: Iterable[str]) -> None:
        batch: builtins.list[str] = []
        for key in keys:
            batch.append(self._full_key(key))
            if len(batch) == DELETE_BATCH:
                self._delete_batch(batch)
                batch = []
        if batch:
            self._delete_batch(batch)

    def _delete_batch(self, full_keys: builtins.list[str]) -> None:
        response = self._call(
            f"delete {len(full_keys)} objects", "delete_objects",
            Delete={"Objects": [{"Key": k} for k in full_keys], "Quiet": True},
        )
        errors = [e for e in response.get("Errors", ()) if e.get("Code") != "NoSuchKey"]
        if errors:
            first = errors[0]
            raise delete_failure(self.name, str(first.get("Key", ""))[len(self.prefix):],
                                 str(first.get("Code", "unknown")), len(errors), len(full_keys))

    def discard_incomplete(self) -> int:
        aborted = 0
        client = self._client()
        paginator = client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for pending in page.get("Uploads", ()):
                    if abort_once(client, self.bucket, str(pending["Key"]),
                                  str(pending["UploadId"])):
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, "list unfinished uploads") from exc
        return aborted


def _is_aws(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidName:
        return False
    return True
