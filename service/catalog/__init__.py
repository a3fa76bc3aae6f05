"""The catalog: what Holdfast knows about instances, snapshots and jobs.

Open it with :func:`open_catalog`, which migrates the schema, and talk to it only
through :class:`Catalog`, which takes and returns plain records.
"""

from service.catalog.db import CatalogUnavailable, open_catalog
from service.catalog.records import InstanceRecord, JobRecord, JobStatus
from service.catalog.repository import Catalog

__all__ = [
    "Catalog",
    "CatalogUnavailable",
    "InstanceRecord",
    "JobRecord",
    "JobStatus",
    "open_catalog",
]
