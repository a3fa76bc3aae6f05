"""The streaming upload behind ``S3Storage.put``, done by hand in the manner of
fsspec's ``AbstractBufferedFile``: a stream of at most one part becomes a single
PutObject, anything longer a multipart upload whose parts (of
:func:`part_size_for` size, growing) go out through a bounded thread pool, so at
most ``concurrency + 1`` parts are held at once. The upload is completed only
after the stream ends without error and aborted (with back-off) on any failure
or interruption, so no partial object ever appears. It sees its storage only
through an :class:`UploadTarget`: the client calls it makes, the bucket, the
write parameters, part size, concurrency and the error translation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from backup.errors import StorageError
from backup.storage.s3.options import MAX_PARTS, max_object_size, part_size_for

logger = logging.getLogger(__name__)

ABORT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
"""Pauses between attempts to abort a failed multipart upload: the endpoint that
just failed the upload may be briefly down, and an unaborted upload costs money."""


class S3Calls(Protocol):
    """The calls of a boto3 S3 client an upload makes (botocore's own errors
    escape them; ``meta.config`` says whether botocore checksums requests)."""

    @property
    def meta(self) -> Any: ...
    def put_object(self, **params: Any) -> dict[str, Any]: ...
    def create_multipart_upload(self, **params: Any) -> dict[str, Any]: ...
    def upload_part(self, **params: Any) -> dict[str, Any]: ...
    def complete_multipart_upload(self, **params: Any) -> dict[str, Any]: ...
    def abort_multipart_upload(self, **params: Any) -> dict[str, Any]: ...
    def head_object(self, **params: Any) -> dict[str, Any]: ...


@dataclass(frozen=True)
class UploadTarget:
    """All an upload needs from its storage: the client and ``bucket`` to talk
    to, the target's ``name`` (for messages and thread names), the first part's
    size, how many parts may be in flight, the per-object write parameters
    (encryption, storage class, tags) and the translation of botocore errors
    (exception, action, key) into :mod:`backup.errors`."""

    client: S3Calls
    bucket: str
    name: str
    part_size: int
    concurrency: int
    write_params: Callable[[str], dict[str, Any]]
    translate: Callable[[Exception, str, str | None], StorageError]


def upload(target: UploadTarget, key: str, full_key: str, chunks: Iterable[bytes]) -> int:
    """Store the whole of ``chunks`` at ``full_key`` (``key`` in messages) and
    return its size. On any failure or interruption the upload is discarded and
    the original exception propagates unchanged."""
    stream = _Upload(target, key, full_key)
    try:
        for chunk in chunks:
            stream.write(chunk)
        return stream.commit()
    except BaseException:
        try:
            stream.discard()
        except Exception:  # never mask the error that got us here
            logger.exception("cleaning up the failed upload of %s failed", key,
                             extra={"target": target.name})
        raise


def abort_once(client: S3Calls, bucket: str, full_key: str, upload_id: str) -> bool:
    """Abort one multipart upload: True if aborted, False if it was already gone.
    Raises botocore's errors untranslated (callers decide)."""
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=full_key, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
            return False
        raise
    return True


def abort(target: UploadTarget, key: str, full_key: str, upload_id: str) -> bool | None:
    """Abort with back-off, since the failure that got us here may be an outage.
    True: aborted; False: no such upload (already completed or aborted);
    None: gave up, logged (``discard_incomplete`` removes it later)."""
    cause = ""
    for attempt, pause in enumerate((0.0, *ABORT_BACKOFF_S)):
        time.sleep(pause)
        try:
            return abort_once(target.client, target.bucket, full_key, upload_id)
        except (BotoCoreError, ClientError) as exc:
            error = target.translate(exc, f"abort the upload of {key}", key)
            cause = str(error)
            if not error.retryable:
                break
            logger.info("abort of %s failed (attempt %d): %s", key, attempt + 1, cause,
                        extra={"target": target.name})
    logger.warning("could not abort the unfinished upload of %s (%s); "
                   "discard_incomplete() removes it later", key, cause,
                   extra={"target": target.name})
    return None


class _Upload:
    """One ``put`` in progress: fills part buffers and hands them to a thread pool.

    At most ``concurrency`` parts are in flight plus the one being filled, so
    memory is bounded by ``part_size * (concurrency + 1)`` (the part size being
    :func:`part_size_for` the current part). The first full part is held back
    until more data arrives, so a stream of at most one part becomes one
    PutObject.
    """

    def __init__(self, target: UploadTarget, key: str, full_key: str) -> None:
        self._target = target
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
        config = target.client.meta.config
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
                                                       self._target.part_size))
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
        target = self._target
        last = self._rest()
        self._held = self._buffer = None
        if self._upload_id is None:
            self._request(f"write {self._key}", target.client.put_object, Body=last,
                          **target.write_params(self._key))
            return self.size
        self._submit(last)  # never empty: the upload began because data followed a part
        while self._pending:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._shutdown()
        parts = sorted(self._parts, key=lambda part: int(part["PartNumber"]))
        try:
            target.client.complete_multipart_upload(
                Bucket=target.bucket, Key=self._full_key, UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
            )
        except (BotoCoreError, ClientError) as exc:
            upload_id, self._upload_id = self._upload_id, None
            if abort(target, self._key, self._full_key, upload_id) is False \
                    and self._stored_anyway():
                return self.size
            raise target.translate(exc, f"complete the upload of {self._key}",
                                   self._key) from exc
        self._upload_id = None
        return self.size

    def _stored_anyway(self) -> bool:
        """After a failed completion whose upload is gone: the completion may have
        gone through and only its answer been lost (botocore then retries into
        NoSuchUpload). True if the object is there, whole."""
        try:
            head = self._target.client.head_object(Bucket=self._target.bucket,
                                                   Key=self._full_key)
        except (BotoCoreError, ClientError):  # missing, or unknown: not stored
            return False
        return int(head.get("ContentLength", -1)) == self.size

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
                abort(self._target, self._key, self._full_key, upload_id)

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()

    def _start(self) -> None:
        target = self._target
        params = target.write_params(self._key)
        if self._checksum == "when_supported":
            # As s3transfer does: botocore checksums every part, so the upload
            # must be created with the same algorithm.
            params["ChecksumAlgorithm"] = "CRC32"
        response = self._request(f"write {self._key}", target.client.create_multipart_upload,
                                 **params)
        self._upload_id = str(response["UploadId"])
        self._executor = ThreadPoolExecutor(max_workers=target.concurrency,
                                            thread_name_prefix=f"s3-put-{target.name}")

    def _submit(self, data: bytearray) -> None:
        if self._upload_id is None:
            self._start()
        assert self._executor is not None
        number = self._next_part
        if number > MAX_PARTS:
            raise StorageError(
                f"target {self._target.name!r}: object {self._key} exceeds "
                f"{max_object_size(self._target.part_size)} bytes, the most "
                f"{MAX_PARTS} parts hold; raise part_size"
            )
        self._next_part += 1
        self._collect({f for f in self._pending if f.done()})
        while len(self._pending) >= self._target.concurrency:
            self._collect(wait(self._pending, return_when=FIRST_COMPLETED).done)
        self._pending.add(self._executor.submit(self._upload_part, number, data))

    def _collect(self, done: set[Future[dict[str, Any]]]) -> None:
        for future in done:
            self._pending.discard(future)
            self._parts.append(future.result())  # raises the part's (translated) error

    def _upload_part(self, number: int, data: bytearray) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self._checksum == "when_supported":
            params["ChecksumAlgorithm"] = "CRC32"
        response = self._request(f"write part {number} of {self._key}",
                                 self._target.client.upload_part, UploadId=self._upload_id,
                                 PartNumber=number, Body=data, **params)
        part = {"PartNumber": number, "ETag": response["ETag"]}
        if "ChecksumCRC32" in response:
            part["ChecksumCRC32"] = response["ChecksumCRC32"]
        return part

    def _request(self, action: str, call: Callable[..., dict[str, Any]],
                 **params: Any) -> dict[str, Any]:
        """``call`` on this object, with botocore's errors translated."""
        try:
            return call(Bucket=self._target.bucket, Key=self._full_key, **params)
        except (BotoCoreError, ClientError) as exc:
            raise self._target.translate(exc, action, self._key) from exc
