"""The registry of storage targets, keyed by URL scheme.

An explicit table in the manner of restic's ``all.go`` and fsspec's
``known_implementations``: each scheme maps to a dotted path that is imported
only when a target of that scheme is configured, so an optional dependency
missing for one scheme never breaks the others. Names are never silently
overridden.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import cast
from urllib.parse import urlparse

from backup.errors import StorageMisconfigured
from backup.storage.base import ObjectInfo, Storage, validate_key

_KNOWN: dict[str, str] = {
    "file": "backup.storage.local:LocalStorage",
    "s3": "backup.storage.s3:S3Storage",
    "memory": "backup.storage.memory:MemoryStorage",
}
KNOWN_SCHEMES = MappingProxyType(_KNOWN)


def register_storage(scheme: str, dotted_path: str, *, clobber: bool = False) -> None:
    """Add a storage implementation. Refuses to replace an existing scheme
    unless ``clobber`` is set, so two plugins cannot silently fight over one."""
    if scheme in _KNOWN and not clobber and _KNOWN[scheme] != dotted_path:
        raise ValueError(f"storage scheme {scheme!r} is already registered to {_KNOWN[scheme]}")
    _KNOWN[scheme] = dotted_path


def storage_from_url(name: str, url: str) -> Storage:
    """Build the target called ``name`` from its URL (``file:///path``, ``s3://bucket/prefix``)."""
    scheme = urlparse(url).scheme
    dotted = _KNOWN.get(scheme)
    if dotted is None:
        known = ", ".join(f"{s}://" for s in sorted(_KNOWN))
        raise StorageMisconfigured(
            f"target {name!r}: unsupported URL scheme in {url!r}; use one of {known}"
        )
    module_name, class_name = dotted.split(":")
    module = importlib.import_module(module_name)
    return cast(Storage, getattr(module, class_name)(name, url))


__all__ = ["KNOWN_SCHEMES", "ObjectInfo", "Storage", "register_storage", "storage_from_url",
           "validate_key"]
