"""The ``s3://bucket/prefix?option=value&…`` URL, parsed into an :class:`S3Location`.

Pure and free of boto3, so it runs (and is tested) without a client, a network
or credentials: the bucket name and key prefix are checked, every query option
in :data:`OPTIONS` is parsed and bounded, and any refusal is a one-line
:class:`StorageMisconfigured` naming the target and the environment variable to
fix, never echoing the URL (it may hold a key pair). The S3 limits and the
part-size rule (:func:`part_size_for`, :func:`max_object_size`) live here too,
since ``part_size`` is checked against them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from backup.errors import InvalidName, StorageMisconfigured
from backup.storage.base import validate_key

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

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")
_SIZE = re.compile(r"\s*([0-9]+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": MiB, "g": GiB}
_STORAGE_CLASS = re.compile(r"[A-Z][A-Z0-9_]*")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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


@dataclass(frozen=True)
class S3Options:
    """The URL's query options, checked; the defaults are those of a bare URL."""

    part_size: int = DEFAULT_PART_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    addressing: str | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    storage_class: str | None = None
    tag_instance: bool = False
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def write_params(self, key: str) -> dict[str, Any]:
        """The PutObject / CreateMultipartUpload parameters for an object at ``key``
        (relative to the prefix): encryption, storage class, instance tag."""
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


@dataclass(frozen=True)
class S3Location:
    """Where a target's objects live: ``bucket``, under ``prefix`` ("" or ending
    in "/"), written with ``options``."""

    bucket: str
    prefix: str
    options: S3Options


def target_env(name: str) -> str:
    """The environment variable that configures the target called ``name``."""
    return f"HOLDFAST_TARGET_{name.upper()}"


def misconfigured(name: str, what: str) -> StorageMisconfigured:
    return StorageMisconfigured(f"target {name!r}: {what}; fix {target_env(name)}")


def parse_url(name: str, url: str) -> S3Location:
    """The bucket, prefix and options of target ``name``'s ``s3://`` URL."""
    parsed = urlsplit(url)
    if parsed.scheme != "s3":
        raise misconfigured(name, "not an s3:// URL; use s3://bucket/prefix")
    if "@" in parsed.netloc:
        # Never echo the URL: it may hold a key pair.
        raise misconfigured(
            name,
            "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID/"
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    bucket = parsed.netloc
    if not _BUCKET.fullmatch(bucket):
        raise misconfigured(name, f"{bucket!r} is not a valid bucket name")
    path = unquote(parsed.path).strip("/")
    if path:
        try:
            validate_key(path)
        except InvalidName as exc:
            raise misconfigured(name, f"invalid prefix {path!r}") from exc
    return S3Location(bucket=bucket, prefix=f"{path}/" if path else "",
                      options=parse_options(name, parsed.query))


def parse_options(name: str, query: str) -> S3Options:
    """The options in a URL's query string (``part_size=16MiB&concurrency=4``)."""
    raw: dict[str, str] = {}
    for option, value in parse_qsl(query, keep_blank_values=True):
        if option not in OPTIONS:
            raise misconfigured(name, f"unknown S3 option {option!r} (known: {', '.join(OPTIONS)})")
        if option in raw:
            raise misconfigured(name, f"S3 option {option!r} is given twice")
        raw[option] = value
    text = raw.get("part_size")
    part_size = DEFAULT_PART_SIZE if text is None else parse_part_size(name, text)
    addressing = raw.get("addressing")
    if addressing not in (None, "path", "virtual", "auto"):
        raise misconfigured(name, "addressing must be path, virtual or auto")
    sse = raw.get("sse") or None
    kms_key_id = raw.get("kms_key_id") or None
    if sse not in (None, "AES256", "aws:kms"):
        raise misconfigured(name, "sse must be AES256 or aws:kms")
    if kms_key_id and sse is None:
        sse = "aws:kms"
    if kms_key_id and sse != "aws:kms":
        raise misconfigured(name, "kms_key_id needs sse=aws:kms")
    storage_class = raw.get("storage_class") or None
    if storage_class is not None and not _STORAGE_CLASS.fullmatch(storage_class):
        raise misconfigured(name, f"{storage_class!r} is not a storage class name")
    tag = raw.get("tag_instance", "").lower()
    if tag not in _TRUE | _FALSE:
        raise misconfigured(name, "tag_instance must be true or false")
    return S3Options(
        part_size=part_size,
        concurrency=_number(name, raw, "concurrency", DEFAULT_CONCURRENCY, 1, 64),
        retries=_number(name, raw, "retries", DEFAULT_RETRIES, 0, 50),
        addressing=addressing,
        sse=sse,
        kms_key_id=kms_key_id,
        storage_class=storage_class,
        tag_instance=tag in _TRUE,
        connect_timeout=float(_number(name, raw, "connect_timeout", 10, 1, 3600)),
        read_timeout=float(_number(name, raw, "read_timeout", 60, 1, 3600)),
    )


def parse_part_size(name: str, text: str) -> int:
    """Bytes in ``text``: a whole number, optionally with a b, k(i)(b), m(i)(b) or
    g(i)(b) suffix in any case, every one binary (``16MB`` is 16 MiB), from
    :data:`MIN_PART_SIZE` to :data:`MAX_PART_SIZE`."""
    match = _SIZE.fullmatch(text)
    if not match:
        raise misconfigured(name, f"part_size {text!r} is not a size such as 16MiB")
    number = match.group(1)
    # Over 20 digits is beyond any bound, and int() refuses 4,300 digits and more.
    if len(number.lstrip("0")) > 20:
        size = MAX_PART_SIZE + 1
    else:
        size = int(number) * _UNITS[match.group(2)[:1].lower()]
    if not MIN_PART_SIZE <= size <= MAX_PART_SIZE:
        raise misconfigured(name, "part_size must be between 5MiB and 5GiB")
    return size


def _number(name: str, raw: dict[str, str], option: str, default: int, low: int,
            high: int) -> int:
    text = raw.get(option)
    if text is None:
        return default
    digits = text.strip()
    # ASCII digits only (str.isdigit() alone also takes "²", which int() refuses), and
    # few enough for int() (it refuses 4,300 and more): every bound is far below.
    if not (digits.isascii() and digits.isdigit() and len(digits.lstrip("0")) <= 20) \
            or not low <= int(digits) <= high:
        raise misconfigured(name, f"{option} must be a whole number from {low} to {high}")
    return int(digits)
