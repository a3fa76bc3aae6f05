"""botocore's errors translated into :mod:`backup.errors`, as two ordered tables.

A ``ClientError`` (S3 answered) is matched on its error code or HTTP status
against :data:`_CLIENT_RULES`, first match wins; any other botocore error
(no answer: connection, credentials) on its type against :data:`_OTHER_RULES`.
Each rule names the error class and a one-line message template naming the
target, bucket and cause. S3's own message is quoted only for errors that are
not about authentication, and never the request (URLs, headers, signatures), so
no secret can leak: the endpoint appears as host[:port] only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from botocore.exceptions import (
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
    ObjectNotFound,
    StorageError,
    StorageMisconfigured,
    StoragePermissionDenied,
    StorageUnavailable,
)
from backup.storage.s3.options import target_env

DENIED = frozenset({
    "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "ExpiredToken", "InvalidToken", "TokenRefreshRequired", "InvalidClientTokenId",
    "AccountProblem", "403"})
THROTTLED = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
    "RequestThrottled", "TooManyRequestsException", "RequestTimeout",
    "ServiceUnavailable", "InternalError", "503"})
WRONG_REGION = frozenset({
    "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraint",
    "IllegalLocationConstraintException", "301"})
BAD_OPTION = frozenset({
    "InvalidStorageClass", "InvalidArgument", "InvalidEncryptionAlgorithmError",
    "KMS.NotFoundException", "KMS.DisabledException", "KMS.KMSInvalidStateException",
    "NotImplemented"})
_MISSING = frozenset({"404", "NotFound"})
"""What a HEAD (no body) says for a missing bucket or object."""


@dataclass(frozen=True)
class Where:
    """What a message may name: the target, its bucket and retries, and the
    endpoint URL of its client if one was built (shown as host[:port] only)."""

    target: str
    bucket: str
    retries: int
    endpoint_url: str | None = None

    @property
    def endpoint(self) -> str:
        """``S3 endpoint host[:port]``: never the URL's path, query or user part."""
        parsed = urlsplit(self.endpoint_url or "")
        if not parsed.hostname:
            return "the S3 endpoint"
        return f"S3 endpoint {parsed.hostname}" + (f":{parsed.port}" if parsed.port else "")


@dataclass(frozen=True)
class _Answer:
    """The parts of S3's answer a rule may look at."""

    code: str
    status: int
    key: str | None


def _never(answer: _Answer) -> bool:
    return False


@dataclass(frozen=True)
class _Rule:
    """``error(message)`` when the answer's code is in ``codes`` or ``also`` holds."""

    error: type[StorageError]
    message: str
    codes: frozenset[str]
    also: Callable[[_Answer], bool] = _never

    def matches(self, answer: _Answer) -> bool:
        return answer.code in self.codes or self.also(answer)


_CLIENT_RULES: tuple[_Rule, ...] = (
    _Rule(StorageMisconfigured,
          "bucket {bucket!r} does not exist; create it or fix {env}",
          frozenset({"NoSuchBucket"}),
          lambda a: a.status == 404 and a.key is None and a.code in _MISSING),
    _Rule(StoragePermissionDenied,
          "cannot {action} in bucket {bucket!r}: {cause}; "
          "check the AWS credentials for this target",
          DENIED, lambda a: a.status == 403),
    _Rule(ObjectNotFound, "no object {key}",
          frozenset({"NoSuchKey"}) | _MISSING,
          lambda a: a.status == 404 and a.key is not None and a.code != "NoSuchUpload"),
    _Rule(StorageUnavailable,
          "{endpoint} could not {action} in bucket {bucket!r} "
          "({code}, still failing after {retries} retries)",
          THROTTLED, lambda a: a.status >= 500),
    _Rule(StorageMisconfigured,
          "bucket {bucket!r} is in another region ({code}); "
          "set AWS_REGION to the bucket's region",
          WRONG_REGION),
    _Rule(StorageError,
          "object {key} is archived ({detail}); restore it from its storage class first",
          frozenset({"InvalidObjectState"})),
    _Rule(StorageMisconfigured,
          "S3 refused to {action} in bucket {bucket!r} ({detail}); "
          "check the sse, kms_key_id and storage_class options in {env}",
          BAD_OPTION),
)
_CLIENT_FALLBACK = _Rule(StorageError, "cannot {action} in bucket {bucket!r}: {detail}",
                         frozenset())

_OTHER_RULES: tuple[tuple[tuple[type[Exception], ...], type[StorageError], str], ...] = (
    ((BotoConnectionError, HTTPClientError, IncompleteReadError), StorageUnavailable,
     "{endpoint} is unreachable, could not {action} in bucket {bucket!r} "
     "({name}, still failing after {retries} retries)"),
    ((NoCredentialsError, PartialCredentialsError, ProfileNotFound, CredentialRetrievalError),
     StorageMisconfigured,
     "no usable AWS credentials ({name}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
     "AWS_PROFILE, or give the host an instance role"),
)
_OTHER_FALLBACK = (StorageError, "cannot {action} in bucket {bucket!r}: {name}")


def translate(exc: Exception, action: str, key: str | None, where: Where) -> StorageError:
    """One line naming the target, bucket and cause of ``exc``, met trying to
    ``action`` (``key`` if the request was about one object)."""
    fields = {"bucket": where.bucket, "env": target_env(where.target), "action": action,
              "key": key, "retries": where.retries, "endpoint": where.endpoint,
              "name": type(exc).__name__}
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "unknown"
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = " ".join(str(error.get("Message", "")).split())[:200]
        answer = _Answer(code, status, key)
        rule = next((r for r in _CLIENT_RULES if r.matches(answer)), _CLIENT_FALLBACK)
        fields.update(code=code, cause="403 Forbidden" if code == "403" else code,
                      detail=f"{code}: {message}" if message else code)
        error_class, template = rule.error, rule.message
    else:
        error_class, template = next(
            ((cls, text) for types, cls, text in _OTHER_RULES if isinstance(exc, types)),
            _OTHER_FALLBACK)
    return error_class(f"target {where.target!r}: " + template.format(**fields))


def delete_failure(target: str, first_key: str, code: str, failed: int,
                   total: int) -> StorageError:
    """The error for a DeleteObjects request that left ``failed`` of ``total``
    keys in place, the first ``first_key`` for reason ``code``."""
    text = (f"target {target!r}: could not delete {failed} of {total} objects, "
            f"first {first_key}: {code}")
    if code in DENIED:
        return StoragePermissionDenied(f"{text}; check the AWS credentials for this target")
    return StorageError(text)
