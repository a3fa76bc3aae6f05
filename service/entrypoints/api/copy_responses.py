"""The HTTP API's response bodies of copies made from volumes: a warm copy
(``/v1/warm``, ``holdfast warm``), a warm refresh job's result and a volume
clone job's result, field for field the use cases' ``to_json()``. Kept apart from :mod:`.responses`,
which types the jobs that carry them, as its size demands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SNAPSHOT_ID = "20261203T050000Z-prod-db-3f9a"
CONTAINER_ID = "4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d"


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


_WARM_EXAMPLE: dict[str, Any] = {
    "name": "prod-db-warm-20261203T040000Z", "container_id": CONTAINER_ID,
    "instance": "prod-db", "snapshot_id": SNAPSHOT_ID, "refreshed": "20261203T040000Z",
    "image": "postgres:15", "status": "stopped",
    "volumes": ["prod-db-warm-20261203T040000Z-data"]}


class WarmCopy(BaseModel):
    """A stopped copy of an instance that restores of its snapshot clone."""

    model_config = _example(_WARM_EXAMPLE)

    name: str
    container_id: str
    instance: str
    snapshot_id: str = Field(description="the snapshot it holds")
    refreshed: str = Field(description="when the refresh that made it began (UTC, compact)")
    image: str
    status: Literal["stopped", "running"] = Field(description="running: someone started "
                                                 "it, and it is not cloned until stopped")
    volumes: list[str]


class WarmResult(BaseModel):
    """A warm refresh job's result."""

    model_config = _example({"warm": _WARM_EXAMPLE,
                             "refreshed": True, "removed": [], "seconds": 14.2})

    warm: WarmCopy
    refreshed: bool = Field(description="false: the warm copy already held that snapshot")
    removed: list[str] = Field(description="the older warm copies removed")
    seconds: float


class CloneResult(BaseModel):
    """A clone job's result."""

    model_config = _example({"source": "shop-data", "target": "shop-data-copy",
                             "created": True, "size_bytes": 104857600, "seconds": 2.318})

    source: str
    target: str
    created: bool = Field(description="whether the clone created the target volume")
    size_bytes: int | None
    seconds: float
    method: Literal["reflink", "copy"] = Field(default="copy", description="reflink: the "
                                              "files share blocks until either is written")
    note: str | None = Field(default=None, description="why it copied, not reflinked")
