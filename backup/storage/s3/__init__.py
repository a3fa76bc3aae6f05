"""The ``s3://bucket/prefix`` storage target: AWS S3 and S3-compatible stores.

Credentials, region and endpoint come from boto3's standard configuration
(``AWS_*`` variables, ``AWS_PROFILE``, instance roles, ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL`` for MinIO, Ceph, R2, …; us-east-1 when no region is set);
the URL's query string carries the rest (:data:`OPTIONS`, parsed in
:mod:`.options`). ``put`` streams (:mod:`.upload`): a stream of at most one part
becomes a single PutObject, anything longer a multipart upload done by hand in
the manner of fsspec's ``AbstractBufferedFile``, whose parts go out through a
bounded thread pool so at most ``concurrency + 1`` parts are held at once, and
which is completed only after the stream ends without error and aborted on any
failure, so no partial object ever appears. The part size doubles every
:data:`PARTS_PER_DOUBLING` parts, so the 10,000-part limit is never met below
:func:`max_object_size` (4.88 TiB at the 5 MiB minimum part size; S3's own 5 TiB
limit from 6 MiB up) without knowing the size in advance; memory stays within
``part_size * (concurrency + 1)`` for objects under 1,000 parts (16 GiB at the
16 MiB default) and doubles with the part size beyond. botocore errors are
translated at the edge into :mod:`backup.errors` (:mod:`.errors`), in one line
naming the target and bucket, never the credentials. :class:`S3Storage`
(:mod:`.storage`) ties these together; boto3 is imported only in this package.
"""

from __future__ import annotations

from backup.storage.s3.options import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PART_SIZE,
    DEFAULT_RETRIES,
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    OPTIONS,
    PARTS_PER_DOUBLING,
    S3Location,
    S3Options,
    max_object_size,
    parse_url,
    part_size_for,
)
from backup.storage.s3.storage import S3Storage

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "DEFAULT_RETRIES",
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "OPTIONS",
    "PARTS_PER_DOUBLING",
    "S3Location",
    "S3Options",
    "S3Storage",
    "max_object_size",
    "parse_url",
    "part_size_for",
]
