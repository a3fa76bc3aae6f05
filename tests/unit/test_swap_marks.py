"""restore.swap's staging marks, pure: what a staging container and its volumes are
labelled with, how a leftover is recognised (name and labels both), and that the
container swapped in carries none of them."""

from __future__ import annotations

import pytest

from backup.ports import ContainerSpec, VolumeSpec
from restore.planner import RESTORED_FROM_LABEL, RestorePlan
from restore.swap import (
    STAGING_FOR_LABEL,
    STAGING_JOB_LABEL,
    STAGING_RUNNER_LABEL,
    ContainerSettings,
    StagingMark,
    SwapTarget,
    final_spec,
    mark_staging,
    marked_alike,
    staging_mark,
)

AT = "20261203T054500Z"
MARK = StagingMark(target="prod-db", job="job-1", runner="host:1:2")


def _plan() -> RestorePlan:
    labels = {RESTORED_FROM_LABEL: "snap-1"}
    return RestorePlan(
        snapshot_id="snap-1",
        container=ContainerSpec(name=f"prod-db-restoring-{AT}", image="postgres:16",
                                env={}, volumes={f"prod-db-{AT}-data": "/data"},
                                labels={**labels, "team": "payments"}),
        volumes=(VolumeSpec(name=f"prod-db-{AT}-data", labels=labels),))


def test_the_mark_goes_on_the_container_and_every_volume() -> None:
    marked = mark_staging(_plan(), MARK, extra={"holdfast.scope": "ci"})
    expected = {STAGING_FOR_LABEL: "prod-db", STAGING_JOB_LABEL: "job-1",
                STAGING_RUNNER_LABEL: "host:1:2"}
    assert marked.container.labels == {RESTORED_FROM_LABEL: "snap-1", "team": "payments",
                                       "holdfast.scope": "ci", **expected}
    assert [v.labels for v in marked.volumes] == [{RESTORED_FROM_LABEL: "snap-1", **expected}]
    assert marked.container.name == _plan().container.name


def test_a_run_without_a_job_is_marked_by_its_process_alone() -> None:
    assert StagingMark("prod-db", None, "host:1:2").labels() == {
        STAGING_FOR_LABEL: "prod-db", STAGING_RUNNER_LABEL: "host:1:2"}


def test_the_container_swapped_in_carries_no_staging_mark() -> None:
    target = SwapTarget(id="old", name="prod-db", running=True, env={},
                        labels={"holdfast.enable": "true"}, settings=ContainerSettings())
    spec = final_spec(mark_staging(_plan(), MARK), target)
    assert spec.labels == {"holdfast.enable": "true", "team": "payments",
                           RESTORED_FROM_LABEL: "snap-1"}


def test_a_marked_staging_container_is_recognised() -> None:
    assert staging_mark(f"prod-db-restoring-{AT}", MARK.labels()) == MARK


@pytest.mark.parametrize(("name", "labels"), [
    (f"prod-db-restoring-{AT}", {}),  # the name alone says nothing
    (f"prod-db-restoring-{AT}", {STAGING_FOR_LABEL: "prod-db"}),  # no job, no process
    (f"prod-db-restoring-{AT}", {**MARK.labels(), STAGING_FOR_LABEL: "other-db"}),
    (f"prod-db-replaced-{AT}", MARK.labels()),  # set aside: never a staging container
    (f"prod-db-undone-{AT}", MARK.labels()),
    ("prod-db", MARK.labels()),
    (f"prod-db-restoring-{AT}-x", MARK.labels()),
])
def test_anything_else_is_not(name: str, labels: dict[str, str]) -> None:
    assert staging_mark(name, labels) is None


def test_a_volume_is_the_staging_containers_only_with_the_same_mark() -> None:
    assert marked_alike({**MARK.labels(), RESTORED_FROM_LABEL: "snap-1"}, MARK)
    assert not marked_alike({}, MARK)
    assert not marked_alike({**MARK.labels(), STAGING_JOB_LABEL: "job-2"}, MARK)
    assert not marked_alike(StagingMark("prod-db", None, "host:1:2").labels(), MARK)
