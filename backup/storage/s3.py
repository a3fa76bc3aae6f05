"""The ``s3://bucket/prefix`` storage target: AWS S3 and S3-compatible stores.

Credentials, region and endpoint come from boto3's standard configuration
(``AWS_*`` variables, ``AWS_PROFILE``, instance roles, ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` for MinIO, Ceph, R2, …; us-east-1 when no region is set);
the URL's query string carries the rest (:data:`OPTIONS`). ``put`` streams: a
stream of at most one part becomes a single PutObject, anything longer a
multipart upload done by hand in the manner of fsspec's ``AbstractBufferedFile``,
whose parts go out through a bounded thread pool so at most ``concurrency + 1``
parts are held at once, and which is completed only after the stream ends without
error and aborted on any failure, so no partial object ever appears. The part size
doubles every :data:`PARTS_PER_DOUBLING` parts, so the 10,000-part limit is never
met below :func:`max_object_size` (4.88 TiB at the 5 MiB minimum part size; S3's
own 5 TiB limit from 6 MiB up) without knowing the size in advance; memory stays
within ``part_size * (concurrency + 1)`` for objects under 1,000 parts (16 GiB at
the 16 MiB default) and doubles with the part size beyond. botocore errors are
translated at the edge into :mod:`backup.errors`, in one line naming the target and
bucket, never the credentials.
"""

from __future__ import annotations

import builtins
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from backup.errors import (
    InvalidName,
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageMisconfigured,
    StoragePermissionDenied,
    StorageUnavailable,
)
from backup.storage.base import ObjectInfo, validate_key
from backup.streams import CHUNK_SIZE

logger = logging.getLogger(__name__)

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB
MIN_PART_SIZE = 5 * MiB
"""S3 refuses smaller parts (except the last)."""
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TiB
"""S3's own limit on one object."""
PARTS_PER_DOUBLING = 1_000
DEFAULT_PART_SIZE = 16 * MiB
DEFAULT_CONCURRENCY = 4
DEFAULT_RETRIES = 5
DELETE_BATCH = 1_000
ABORT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
"""Pauses between attempts to abort a failed multipart upload: the endpoint that
just failed the upload may be briefly down, and an unaborted upload costs money."""

OPTIONS = (
    "part_size",  # bytes, or with a KiB/MiB/GiB suffix; 5 MiB .. 5 GiB (default 16 MiB)
    "concurrency",  # parts uploaded at once (default 4)
    "retries",  # botocore retries per request after the first attempt (default 5)
    "addressing",  # path | virtual | auto (default: path with a custom endpoint, else auto)
    "sse",  # AES256 | aws:kms
    "kms_key_id",  # KMS key for sse=aws:kms (implies it)
    "storage_class",  # STANDARD, STANDARD_IA, …
    "tag_instance",  # true: tag objects holdfast-instance=<first key component>
    "connect_timeout",  # seconds (default 10)
    "read_timeout",  # seconds (default 60)
)

_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")
_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": GiB}
_STORAGE_CLASS = re.compile(r"^[A-Z][A-Z0-9_]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId",
           "AccountProblem", "403"}
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
              "RequestThrottled", "TooManyRequestsException", "RequestTimeout",
              "ServiceUnavailable", "InternalError", "503"}
_WRONG_REGION = {"PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint",
                 "IllegalLocationConstraintException", "301"}
_BAD_OPTION = {"InvalidStorageClass", "InvalidArgument", "InvalidEncryptionAlgorithmError",
               "KMS.NotFoundException", "KMS.DisabledException", "KMS.KMSInvalidStateException",
               "NotImplemented"}


def part_size_for(part_number: int, base: int) -> int:
    """Size of part ``part_number`` (1-based) of an upload that starts with ``base``.

    It doubles every :data:`PARTS_PER_DOUBLING` parts, up to S3's 5 GiB per part,
    so an upload of unknown length reaches far past 10,000 * ``base`` while small
    uploads keep small parts (and small buffers). Pure.
    """
    if part_number < 1:
        raise ValueError("part numbers start at 1")
    return min(base << ((part_number - 1) // PARTS_PER_DOUBLING), MAX_PART_SIZE)


def max_object_size(base: int) -> int:
    """The largest object a multipart upload starting at part size ``base`` can
    store: all :data:`MAX_PARTS` parts at :func:`part_size_for`, capped by S3's
    5 TiB. With the 5 MiB minimum that is 1000 * 5 MiB * (2**10 - 1) ≈ 4.88 TiB; from
    6 MiB up it is S3's 5 TiB."""
    whole = sum(part_size_for(n, base) * PARTS_PER_DOUBLING
                for n in range(1, MAX_PARTS + 1, PARTS_PER_DOUBLING))
    return min(whole, MAX_OBJECT_SIZE)


class S3Storage:
    scheme: ClassVar[str] = "s3"

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self._env_name = f"HOLDFAST_TARGET_{name.upper()}"
        parsed = urlsplit(url)
        if parsed.scheme != "s3":
            raise self._misconfigured("not an s3:// URL; use s3://bucket/prefix")
        if "@" in parsed.netloc:
            # Never echo the URL: it may hold a key pair.
            raise self._misconfigured(
                "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/"
                "AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            )
        self.bucket = parsed.netloc
        if not _BUCKET.match(self.bucket):
            raise self._misconfigured(f"{self.bucket!r} is not a valid bucket name")
        path = unquote(parsed.path).strip("/")
        if path:
            try:
                validate_key(path)
            except InvalidName as exc:
                raise self._misconfigured(f"invalid prefix {path!r}") from exc
        self.prefix = f"{path}/" if path else ""
        options = self._parse_options(parsed.query)
        self.part_size = options["part_size"]
        self.concurrency = options["concurrency"]
        self.retries = options["retries"]
        self.addressing: str | None = options["addressing"]
        self.sse: str | None = options["sse"]
        self.kms_key_id: str | None = options["kms_key_id"]
        self.storage_class: str | None = options["storage_class"]
        self.tag_instance: bool = options["tag_instance"]
        self.connect_timeout: float = options["connect_timeout"]
        self.read_timeout: float = options["read_timeout"]
        self._client_lock = threading.Lock()
        self._s3: Any = None

    def __repr__(self) -> str:
        return f"S3Storage({self.name!r}, 's3://{self.bucket}/{self.prefix}')"

    # --- configuration ---------------------------------------------------------

    def _misconfigured(self, what: str) -> StorageMisconfigured:
        return StorageMisconfigured(f"target {self.name!r}: {what}; fix {self._env_name}")

    def _parse_options(self, query: str) -> dict[str, Any]:
        raw: dict[str, str] = {}
        for option, value in parse_qsl(query, keep_blank_values=True):
            if option not in OPTIONS:
                raise self._misconfigured(
                    f"unknown S3 option {option!r} (known: {', '.join(OPTIONS)})"
                )
            if option in raw:
                raise self._misconfigured(f"S3 option {option!r} is given twice")
            raw[option] = value
        part_size = self._size(raw.get("part_size"), DEFAULT_PART_SIZE)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise self._misconfigured("part_size must be between 5MiB and 5GiB")
        addressing = raw.get("addressing")
        if addressing not in (None, "path", "virtual", "auto"):
            raise self._misconfigured("addressing must be path, virtual or auto")
        sse = raw.get("sse") or None
        kms_key_id = raw.get("kms_key_id") or None
        if sse not in (None, "AES256", "aws:kms"):
            raise self._misconfigured("sse must be AES256 or aws:kms")
        if kms_key_id and sse is None:
            sse = "aws:kms"
        if kms_key_id and sse != "aws:kms":
            raise self._misconfigured("kms_key_id needs sse=aws:kms")
        storage_class = raw.get("storage_class") or None
        if storage_class is not None and not _STORAGE_CLASS.match(storage_class):
            raise self._misconfigured(f"{storage_class!r} is not a storage class name")
        tag = raw.get("tag_instance", "").lower()
        if tag not in _TRUE | _FALSE:
            raise self._misconfigured("tag_instance must be true or false")
        return {
            "part_size": part_size,
            "concurrency": self._number(raw, "concurrency", DEFAULT_CONCURRENCY, 1, 64),
            "retries": self._number(raw, "retries", DEFAULT_RETRIES, 0, 50),
            "addressing": addressing,
            "sse": sse,
            "kms_key_id": kms_key_id,
            "storage_class": storage_class,
            "tag_instance": tag in _TRUE,
            "connect_timeout": float(self._number(raw, "connect_timeout", 10, 1, 3600)),
            "read_timeout": float(self._number(raw, "read_timeout", 60, 1, 3600)),
        }

    def _size(self, text: str | None, default: int) -> int:
        if text is None:
            return default
        match = _SIZE.match(text)
        if not match:
            raise self._misconfigured(f"part_size {text!r} is not a size such as 16MiB")
        return int(match.group(1)) * _UNITS[match.group(2)[:1].lower()]

    def _number(self, raw: dict[str, str], option: str, default: int, low: int,
                high: int) -> int:
        text = raw.get(option)
        if text is None:
            return default
        if not text.strip().isdigit() or not low <= int(text) <= high:
            raise self._misconfigured(f"{option} must be a whole number from {low} to {high}")
        return int(text)

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
                try:
                    session = boto3.session.Session()
                    # botocore reads AWS_DEFAULT_REGION and the profile but not
                    # AWS_REGION, which the other SDKs and the AWS CLI v2 put first.
                    region = os.environ.get("AWS_REGION") or session.region_name or "us-east-1"
                    client = session.client("s3", region_name=region,
                                            config=self._config(self.addressing or "auto"))
                    if self.addressing is None and not _is_aws(client.meta.endpoint_url):
                        # MinIO, Ceph and most others serve buckets under the path.
                        client = session.client("s3", region_name=region,
                                                config=self._config("path"))
                except (BotoCoreError, ClientError) as exc:
                    raise self._translate(exc, "connect to S3") from exc
                except ValueError as exc:
                    raise self._misconfigured(
                        "the S3 endpoint (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) is not a "
                        "valid URL"
                    ) from exc
                self._s3 = client
            return self._s3

    def _config(self, addressing: str) -> Any:
        return Config(
            retries={"mode": "standard", "max_attempts": self.retries},
            max_pool_connections=self.concurrency + 4,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            s3={"addressing_style": addressing},
            user_agent_extra="holdfast",
        )

    def _endpoint(self) -> str:
        """``S3 endpoint host[:port]``: never the URL's path, query or user part."""
        client = self._s3
        parsed = urlsplit(client.meta.endpoint_url if client is not None else "")
        if not parsed.hostname:
            return "the S3 endpoint"
        return f"S3 endpoint {parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")

    # --- error translation -----------------------------------------------------

    def _translate(self, exc: Exception, action: str, key: str | None = None) -> StorageError:
        """One line naming the target, bucket and cause. S3's own message is quoted
        only for errors that are not about authentication, and never the request
        (URLs, headers, signatures)."""
        where = f"target {self.name!r}"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or "unknown"
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            message = " ".join(str(error.get("Message", "")).split())[:200]
            detail = f"{code}: {message}" if message else code
            if code == "NoSuchBucket" or (status == 404 and key is None and
                                          code in ("404", "NotFound")):
                return StorageMisconfigured(
                    f"{where}: bucket {self.bucket!r} does not exist; create it or fix "
                    f"{self._env_name}"
                )
            if code in _DENIED or status == 403:
                cause = "403 Forbidden" if code == "403" else code
                return StoragePermissionDenied(
                    f"{where}: cannot {action} in bucket {self.bucket!r}: {cause}; "
                    "check the AWS credentials for this target"
                )
            if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and key is not None
                                                           and code != "NoSuchUpload"):
                return ObjectNotFound(f"{where}: no object {key}")
            if code in _THROTTLED or status >= 500:
                return StorageUnavailable(
                    f"{where}: {self._endpoint()} could not {action} in "
                    f"bucket {self.bucket!r} ({code}, still failing after {self.retries} "
                    "retries)"
                )
            if code in _WRONG_REGION:
                return StorageMisconfigured(
                    f"{where}: bucket {self.bucket!r} is in another region ({code}); set "
                    "AWS_REGION to the bucket's region"
                )
            if code == "InvalidObjectState":
                return StorageError(
                    f"{where}: object {key} is archived ({detail}); restore it from its "
                    "storage class first"
                )
            if code in _BAD_OPTION:
                return StorageMisconfigured(
                    f"{where}: S3 refused to {action} in bucket {self.bucket!r} ({detail}); "
                    "check the sse, "
                    f"kms_key_id and storage_class options in {self._env_name}"
                )
            return StorageError(f"{where}: cannot {action} in bucket {self.bucket!r}: {detail}")
        if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
            return StorageUnavailable(
                f"{where}: {self._endpoint()} is unreachable, could not {action} in bucket "
                f"{self.bucket!r} ({type(exc).__name__}, still failing after {self.retries} "
                "retries)"
            )
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | ProfileNotFound
                      | CredentialRetrievalError):
            return StorageMisconfigured(
                f"{where}: no usable AWS credentials ({type(exc).__name__}); set "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or give the host "
                "an instance role"
            )
        return StorageError(
            f"{where}: cannot {action} in bucket {self.bucket!r}: {type(exc).__name__}"
        )

    def _call(self, action: str, operation: str, key: str | None = None,
              **params: Any) -> dict[str, Any]:
        client = self._client()
        try:
            response: dict[str, Any] = getattr(client, operation)(Bucket=self.bucket, **params)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, action, key) from exc
        return response

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

    def _write_params(self, key: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.sse:
            params["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            params["SSEKMSKeyId"] = self.kms_key_id
        if self.storage_class:
            params["StorageClass"] = self.storage_class
        if self.tag_instance:
            params["Tagging"] = urlencode({"holdfast-instance": key.split("/", 1)[0]})
        return params

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
        upload = _Upload(self, key, full_key)
        try:
            for chunk in chunks:
                upload.write(chunk)
            size = upload.commit()
        except BaseException:
            try:
                upload.discard()
            except Exception:  # never mask the error that got us here
                logger.exception("cleaning up the failed upload of %s failed", key,
                                 extra={"target": self.name})
            raise
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
            key = str(first.get("Key", ""))[len(self.prefix):]
            code = str(first.get("Code", "unknown"))
            text = (f"target {self.name!r}: could not delete {len(errors)} of "
                    f"{len(full_keys)} objects, first {key}: {code}")
            if code in _DENIED:
                raise StoragePermissionDenied(f"{text}; check the AWS credentials for this target")
            raise StorageError(text)

    def discard_incomplete(self) -> int:
        aborted = 0
        paginator = self._client().get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", ()):
                    if self._abort_once(str(upload["Key"]), str(upload["UploadId"])):
                        aborted += 1
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, "list unfinished uploads") from exc
        return aborted

    # --- multipart plumbing --------------------------------------------------------

    def _abort_once(self, full_key: str, upload_id: str) -> bool:
        """Abort one multipart upload: True if aborted, False if it was already gone.
        Raises botocore's errors untranslated (callers decide)."""
        try:
            self._client().abort_multipart_upload(Bucket=self.bucket, Key=full_key,
                                                  UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return False
            raise
        return True

    def _abort(self, key: str, full_key: str, upload_id: str) -> bool | None:
        """Abort with back-off, since the failure that got us here may be an outage.
        True: aborted; False: no such upload (already completed or aborted);
        None: gave up, logged (``discard_incomplete`` removes it later)."""
        cause = ""
        for attempt, pause in enumerate((0.0, *ABORT_BACKOFF_S)):
            time.sleep(pause)
            try:
                return self._abort_once(full_key, upload_id)
            except (BotoCoreError, ClientError) as exc:
                error = self._translate(exc, f"abort the upload of {key}", key)
                cause = str(error)
                if not error.retryable:
                    break
                logger.info("abort of %s failed (attempt %d): %s", key, attempt + 1, cause,
                            extra={"target": self.name})
        logger.warning("could not abort the unfinished upload of %s (%s); "
                       "discard_incomplete() removes it later", key, cause,
                       extra={"target": self.name})
        return None


class _Upload:
    """One ``put`` in progress: fills part buffers and hands them to a thread pool.

    At most ``concurrency`` parts are in flight plus the one being filled, so
    memory is bounded by ``part_size * (concurrency + 1)`` (the part size being
    :func:`part_size_for` the current part). The first full part is held back
    until more data arrives, so a stream of at most one part becomes one
    PutObject.
    """

    def __init__(self, storage: S3Storage, key: str, full_key: str) -> None:
        self._storage = storage
        self._key = key
        self._full_key = full_key
        self._buffer: bytearray | None = None
        self._fill = 0
        self._held: bytearray | None = None
        self._upload_id: str | None = None
        self._next_part = 1
        self._pending: set[Future[dict[str, Any]]] = set()
        self._parts: list[dict[str, Any]] = []
        self._executor: ThreadPoolExecutor | None = None
        config = storage._client().meta.config
        self._checksum = getattr(config, "request_checksum_calculation", None)
        self.size = 0

    def write(self, chunk: bytes) -> None:
        view = memoryview(chunk).cast("B")
        self.size += len(view)
        while view:
            if self._held is not None:  # more data follows a full part: it is a real part
                held, self._held = self._held, None
                self._submit(held)
            if self._buffer is None:
                # Allocated whole, once per part: no growth slack, no copies.
                self._buffer = bytearray(part_size_for(self._next_part,
                                                       self._storage.part_size))
                self._fill = 0
            count = min(len(self._buffer) - self._fill, len(view))
            self._buffer[self._fill:self._fill + count] = view[:count]
            self._fill += count
            view = view[count:]
            if self._fill == len(self._buffer):
                self._held, self._buffer = self._buffer, None

    def _rest(self) -> bytearray:
        if self._held is not None:
            return self._held
        if self._buffer is None:
            return bytearray()
        del self._buffer[self._fill:]  # shrinks in place
        return self._buffer

    def commit(self) -> int:
        """Store what was written; returns the size. Raises translated errors."""
        storage = self._storage
        last = self._rest()
        self._held = self._buffer = None
        if self._upload_id is None:
            storage._call(f"write {self._key}", "put_object", self._key, Key=self._full_key,
                          Body=last, **storage._write_params(self._key))
            return self.size
        self._submit(last)  # never empty: the upload began because data followed a part
        while self._pending:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._shutdown()
        parts = sorted(self._parts, key=lambda part: int(part["PartNumber"]))
        try:
            storage._client().complete_multipart_upload(
                Bucket=storage.bucket, Key=self._full_key, UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (BotoCoreError, ClientError) as exc:
            upload_id, self._upload_id = self._upload_id, None
            if storage._abort(self._key, self._full_key, upload_id) is False \
                    and self._stored_anyway():
                return self.size
            raise storage._translate(exc, f"complete the upload of {self._key}",
                                     self._key) from exc
        self._upload_id = None
        return self.size

    def _stored_anyway(self) -> bool:
        """After a failed completion whose upload is gone: the completion may have
        gone through and only its answer been lost (botocore then retries into
        NoSuchUpload). True if the object is there, whole."""
        try:
            head = self._storage._head(self._key)
        except StorageError:
            return False
        return head is not None and int(head.get("ContentLength", -1)) == self.size

    def discard(self) -> None:
        """After any failure: stop the pool (waiting for parts in flight, so none
        lands after the abort), then abort. Never raises: the caller re-raises
        the error that brought it here."""
        self._held = self._buffer = None
        try:
            self._shutdown()
        finally:
            if self._upload_id is not None:
                upload_id, self._upload_id = self._upload_id, None
                self._storage._abort(self._key, self._full_key, upload_id)

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()

    def _start(self) -> None:
        storage = self._storage
        params = storage._write_params(self._key)
        if self._checksum == "when_supported":
            # As s3transfer does: botocore checksums every part, so the upload
            # must be created with the same algorithm.
            params["ChecksumAlgorithm"] = "CRC32"
        response = storage._call(f"write {self._key}", "create_multipart_upload", self._key,
                                 Key=self._full_key, **params)
        self._upload_id = str(response["UploadId"])
        self._executor = ThreadPoolExecutor(max_workers=storage.concurrency,
                                            thread_name_prefix=f"s3-put-{storage.name}")

    def _submit(self, data: bytearray) -> None:
        if self._upload_id is None:
            self._start()
        assert self._executor is not None
        number = self._next_part
        if number > MAX_PARTS:
            raise StorageError(
                f"target {self._storage.name!r}: object {self._key} exceeds "
                f"{max_object_size(self._storage.part_size)} bytes, the most "
                f"{MAX_PARTS} parts hold; raise part_size"
            )
        self._next_part += 1
        self._collect({f for f in self._pending if f.done()})
        while len(self._pending) >= self._storage.concurrency:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending.add(self._executor.submit(self._upload_part, number, data))

    def _collect(self, done: set[Future[dict[str, Any]]]) -> None:
        for future in done:
            self._pending.discard(future)
            self._parts.append(future.result())  # raises the part's (translated) error

    def _upload_part(self, number: int, data: bytearray) -> dict[str, Any]:
        storage = self._storage
        params: dict[str, Any] = {}
        if self._checksum == "when_supported":
            params["ChecksumAlgorithm"] = "CRC32"
        response = storage._call(f"write part {number} of {self._key}", "upload_part",
                                 self._key, Key=self._full_key, UploadId=self._upload_id,
                                 PartNumber=number, Body=data, **params)
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part


def _is_aws(endpoint_url: str) -> bool:
    host = urlsplit(endpoint_url).hostname or ""
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


def _is_valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidName:
        return False
    return True
