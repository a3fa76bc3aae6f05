"""The HTTP API's response bodies of the integrity checks (``holdfast verify``):
the results of ``verify`` and ``verify-target`` jobs, field for field the
reports' ``to_json()`` (:mod:`backup.integrity`). Kept apart from
:mod:`.responses`, which types the jobs that carry them, as its size demands."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SNAPSHOT_ID = "20261203T050000Z-prod-db-3f9a"


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": [example]})


_CHECK_NAMES = Literal["manifest", "present", "size", "sha256", "decrypts", "decompresses",
                       "framing"]
_PROBLEM_KINDS = Literal["missing", "short", "long", "corrupt", "manifest", "no-manifest",
                         "orphan"]


class IntegrityCheck(BaseModel):
    """One check of a stored snapshot; ``detail`` says why it failed or was not made."""

    model_config = _example({"check": "sha256", "outcome": "failed", "detail":
                             "sha256 1f0c2a9e77b3... of the stored bytes, the manifest says "
                             "9f2c5e0b7d1a..."})

    check: _CHECK_NAMES
    outcome: Literal["ok", "failed", "not checked"]
    detail: str | None


_VERIFY_EXAMPLE: dict[str, Any] = {
    "snapshot_id": SNAPSHOT_ID, "instance": "prod-db", "target": "local",
    "data_key": f"prod-db/{SNAPSHOT_ID}/data.hfa.zst.age", "whole": True,
    "fully_checked": True, "problem": None, "error": None, "encryption": "age-v1",
    "expected_size": 1843, "stored_size": 1843, "members": 3,
    "checks": [{"check": name, "outcome": "ok", "detail": None} for name in
               ("manifest", "present", "size", "sha256", "decrypts", "decompresses",
                "framing")],
}


class VerifyResult(BaseModel):
    """A verification of one snapshot (a ``verify`` job's result, ``holdfast verify
    --json``): whole when no check failed."""

    model_config = _example(_VERIFY_EXAMPLE)

    snapshot_id: str
    instance: str
    target: str
    data_key: str | None = Field(description="the data object read; null: no manifest")
    whole: bool = Field(description="no check failed")
    fully_checked: bool = Field(description="every layer the object has was read (false "
                                "for an encrypted one read without an identity)")
    problem: _PROBLEM_KINDS | None = Field(description="what is wrong, in one word")
    error: str | None = Field(description="the first failed check and why, on one line")
    encryption: str | None
    expected_size: int | None = Field(description="bytes, as the manifest records")
    stored_size: int | None = Field(description="bytes read from the target")
    members: int | None = Field(description="archive members read, when the framing was "
                                "checked")
    checks: list[IntegrityCheck]


class TargetProblem(BaseModel):
    """One thing wrong in a target."""

    model_config = _example({"kind": "orphan", "key": "prod-db/stray.bin",
                             "snapshot_id": None, "detail": "12 bytes that no manifest claims"})

    kind: _PROBLEM_KINDS
    key: str = Field(description="the object (or the manifest it lacks)")
    snapshot_id: str | None
    detail: str


class VerifyTargetResult(BaseModel):
    """A verification of everything a target holds (a ``verify-target`` job's result)."""

    model_config = _example({
        "target": "local", "whole": False, "objects": 3,
        "summary": "target local: 1 snapshot(s), 3 object(s): 1 orphan",
        "problems": [{"kind": "orphan", "key": "prod-db/stray.bin", "snapshot_id": None,
                      "detail": "12 bytes that no manifest claims"}],
        "snapshots": [_VERIFY_EXAMPLE]})

    target: str
    whole: bool = Field(description="no problem found")
    objects: int = Field(description="objects listed")
    summary: str = Field(description="one line; says how many encrypted objects were "
                         "checked for size and sha256 only")
    problems: list[TargetProblem]
    snapshots: list[VerifyResult]
