"""The catalog: what Holdfast knows about instances, snapshots and jobs.

Open it with :func:`open_catalog`, which migrates the schema, and talk to it only
through :class:`Catalog`, which takes and returns plain records.
"""

from service.adapters.catalog.db import open_catalog
from service.adapters.catalog.repository import Catalog
from service.adapters.catalog.urls import CatalogUnavailable
from service.records import InstanceRecord, JobRecord, JobStatus

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "InstanceRecord",
    "JobRecord",
    "JobStatus",
    "open_catalog",
]
