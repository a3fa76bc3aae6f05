"""The catalog: what Holdfast knows about instances, snapshots and jobs.

Open it with :func:`open_catalog`, which migrates the schema, and talk to it only
through :class:`Catalog`, which takes and returns plain records. The names are
loaded on first use (PEP 562), so importing a light module of this package,
such as :mod:`~service.adapters.catalog.sqlite_reader`, does not import
SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from service.adapters.catalog.urls import CatalogUnavailable
from service.records import InstanceRecord, JobRecord, JobStatus

if TYPE_CHECKING:
    from service.adapters.catalog.db import open_catalog
    from service.adapters.catalog.repository import Catalog

_LAZY = {"open_catalog": "service.adapters.catalog.db",
         "Catalog": "service.adapters.catalog.repository"}

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "InstanceRecord",
    "JobRecord",
    "JobStatus",
    "open_catalog",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
