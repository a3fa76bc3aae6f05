"""Warm copies, purely: the names and labels of :mod:`restore.warm`, which warm copy a restore
clones (the newest stopped one of its snapshot, else a note saying why it streams), which
copies a refresh supersedes, and :func:`service.adapters.docker.volumes.copy_answer`, the
parser of the volume-copy helper script's output (reflinks, a plain copy and why, and output
it does not expect), checked once against the script itself run on this machine's ``cp``."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.names import CONTAINER_NAME_MAX, check_container_name
from backup.ports import ContainerSpec, VolumeCopy, VolumeSpec
from backup.types import DatabaseContainer, Mount
from restore.planner import RESTORED_FROM_LABEL, RestorePlan
from restore.swap import stamp
from restore.warm import (
    WARM_OF_LABEL,
    WARM_STAMP_LABEL,
    WarmChoice,
    WarmCopy,
    as_warm_copy,
    superseded,
    warm_name,
    warm_sources,
)
from service.adapters.docker import volumes as docker_volumes
from service.adapters.docker.volumes import copy_answer

SNAP = "20261205T071200Z-aaaaaa"
OTHER = "20261204T071200Z-bbbbbb"
DATA = "/var/lib/postgresql/data"
IMAGE = "postgres:16"


def _plan(snapshot_id: str = SNAP, image: str = IMAGE,
          volumes: dict[str, str] | None = None) -> RestorePlan:
    mapping = {"new-data": DATA} if volumes is None else volumes
    return RestorePlan(
        snapshot_id=snapshot_id,
        container=ContainerSpec(name="new", image=image, env={}, volumes=mapping),
        volumes=tuple(VolumeSpec(name) for name in mapping))


def _warm(at: str, *, snapshot: str = SNAP, running: bool = False, image: str = IMAGE,
          volumes: dict[str, str] | None = None, instance: str = "shop") -> WarmCopy:
    name = warm_name(instance, at)
    return WarmCopy(container_id=f"id-{name}", name=name, instance=instance,
                    snapshot_id=snapshot, stamp=at, image=image, running=running,
                    volumes={DATA: f"{name}-data"} if volumes is None else volumes)


def _at(minutes: int) -> str:
    return stamp(datetime(2026, 12, 5, 7, 0, tzinfo=UTC) + timedelta(minutes=minutes))


# --- names and labels -------------------------------------------------------------------


def test_warm_name_is_the_instance_then_warm_then_the_stamp() -> None:
    assert warm_name("shop", "20261205T071200Z") == "shop-warm-20261205T071200Z"
    assert (WARM_OF_LABEL, WARM_STAMP_LABEL) == ("holdfast.warm-of", "holdfast.warm-stamp")


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,105}", fullmatch=True),
       st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2999, 12, 31)))
def test_warm_names_of_instances_up_to_106_characters_are_container_names(
        instance: str, moment: datetime) -> None:
    name = warm_name(instance, stamp(moment))
    check_container_name(name)  # raises InvalidName otherwise
    assert name.startswith(instance + "-warm-") and len(name) == len(instance) + 22


@given(st.lists(st.datetimes(min_value=datetime(2000, 1, 1),
                             max_value=datetime(2999, 12, 31)), min_size=2, max_size=5))
def test_warm_names_of_one_instance_sort_as_their_stamps(moments: list[datetime]) -> None:
    stamps = [stamp(moment) for moment in moments]
    assert sorted(warm_name("shop", s) for s in stamps) == \
        [warm_name("shop", s) for s in sorted(stamps)]


def test_the_warm_name_of_the_longest_instance_name_is_a_container_name() -> None:
    check_container_name(warm_name("a" * CONTAINER_NAME_MAX, "20261205T071200Z"))


def test_a_container_with_both_warm_labels_is_a_warm_copy_of_its_volume_mounts() -> None:
    container = DatabaseContainer(
        id="c1", name="shop-warm-20261205T071200Z", image=IMAGE, image_id="sha256:1",
        labels={WARM_OF_LABEL: "shop", RESTORED_FROM_LABEL: SNAP,
                WARM_STAMP_LABEL: "20261205T071200Z"},
        mounts=(Mount(DATA, "volume", "shop-warm-data"), Mount("/etc/x", "bind", "/srv/x"),
                Mount("/run", "tmpfs")),
        running=False)
    warm = as_warm_copy(container)
    assert warm == WarmCopy(container_id="c1", name="shop-warm-20261205T071200Z",
                            instance="shop", snapshot_id=SNAP, stamp="20261205T071200Z",
                            image=IMAGE, running=False, volumes={DATA: "shop-warm-data"})
    assert warm.to_json() == {
        "name": "shop-warm-20261205T071200Z", "container_id": "c1", "instance": "shop",
        "snapshot_id": SNAP, "refreshed": "20261205T071200Z", "image": IMAGE,
        "status": "stopped", "volumes": ["shop-warm-data"]}


@pytest.mark.parametrize("labels", [
    {}, {WARM_OF_LABEL: "shop"}, {RESTORED_FROM_LABEL: SNAP},
    {WARM_OF_LABEL: "", RESTORED_FROM_LABEL: SNAP},
    {WARM_OF_LABEL: "shop", RESTORED_FROM_LABEL: ""},
])
def test_a_container_without_both_labels_is_no_warm_copy(labels: dict[str, str]) -> None:
    container = DatabaseContainer(id="c1", name="x", image=IMAGE, image_id="", labels=labels)
    assert as_warm_copy(container) is None


def test_a_warm_copy_without_a_stamp_is_older_than_any_and_shows_running() -> None:
    container = DatabaseContainer(id="c1", name="x", image=IMAGE, image_id="",
                                  labels={WARM_OF_LABEL: "shop", RESTORED_FROM_LABEL: SNAP})
    warm = as_warm_copy(container)
    assert warm is not None and warm.stamp == "" and warm.volumes == {}
    assert warm.to_json()["status"] == "running"
    assert superseded([warm], "shop", _warm(_at(0))) == [warm]


# --- which warm copy a restore clones ------------------------------------------------------


def test_the_newest_stopped_warm_copy_of_the_snapshot_is_cloned() -> None:
    old, new, other = _warm(_at(0)), _warm(_at(5)), _warm(_at(9), snapshot=OTHER)
    choice = warm_sources(_plan(), [old, other, new])
    assert choice == WarmChoice(warm=new, sources={"new-data": f"{new.name}-data"}, note=None)


def test_a_running_warm_copy_is_passed_over_for_an_older_stopped_one() -> None:
    running, stopped = _warm(_at(5), running=True), _warm(_at(1))
    choice = warm_sources(_plan(), [running, stopped])
    assert choice.warm == stopped and choice.note is None


def test_only_running_warm_copies_stream_and_say_so() -> None:
    running = _warm(_at(5), running=True)
    choice = warm_sources(_plan(), [running, _warm(_at(1), running=True)])
    assert choice.warm is None and choice.sources is None
    assert choice.note == (f"warm copy {running.name} is running, so it is not cloned; "
                           "stop it, or run holdfast warm refresh")


def test_no_warm_copy_at_all_streams_without_a_note() -> None:
    assert warm_sources(_plan(), []) == WarmChoice()


def test_a_warm_copy_of_another_snapshot_streams_and_names_the_newest() -> None:
    older = "20261201T000000Z-cccccc"
    choice = warm_sources(_plan(), [_warm(_at(9), snapshot=OTHER), _warm(_at(1), snapshot=older)])
    assert choice.warm is None and choice.sources is None
    assert choice.note == f"no warm copy of snapshot {SNAP} (the newest is of {OTHER})"


def test_a_warm_copy_of_another_image_streams_when_an_image_was_given() -> None:
    warm = _warm(_at(1), image="postgres:15")
    choice = warm_sources(_plan(image=IMAGE), [warm], image_given=True)
    assert choice.warm is None
    assert choice.note == (f"warm copy {warm.name} runs postgres:15, not {IMAGE}: "
                           "the snapshot streamed")
    # Without --image the plan runs the snapshot's recorded image: the image is not compared.
    assert warm_sources(_plan(image=IMAGE), [warm]).warm == warm


def test_a_warm_copy_missing_a_mount_of_the_plan_streams_and_names_it() -> None:
    plan = _plan(volumes={"new-data": DATA, "new-wal": "/wal"})
    warm = _warm(_at(1))
    choice = warm_sources(plan, [warm])
    assert choice.warm is None and choice.sources is None
    assert choice.note == f"warm copy {warm.name} has no volume at /wal: the snapshot streamed"


def test_every_volume_of_the_plan_is_mapped_to_the_warm_volume_at_its_destination() -> None:
    plan = _plan(volumes={"new-data": DATA, "new-wal": "/wal"})
    warm = _warm(_at(1), volumes={"/wal": "w-wal", DATA: "w-data", "/extra": "w-extra"})
    assert warm_sources(plan, [warm]).sources == {"new-data": "w-data", "new-wal": "w-wal"}


def test_no_warm_streams_and_says_it_was_asked_not_to_when_there_was_one() -> None:
    warm = _warm(_at(1))
    assert warm_sources(_plan(), [warm], wanted=False) == \
        WarmChoice(note="warm copies not used (asked not to)")
    assert warm_sources(_plan(), [_warm(_at(1), snapshot=OTHER)], wanted=False) == WarmChoice()
    assert warm_sources(_plan(), [], wanted=False) == WarmChoice()


_WARMS = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([SNAP, OTHER]),
                            st.booleans()), max_size=8, unique_by=lambda t: t[0])


@given(_WARMS)
def test_the_choice_is_always_the_newest_stopped_candidate_of_the_snapshot(
        drawn: list[tuple[int, str, bool]]) -> None:
    warms = [_warm(_at(minute), snapshot=snap, running=running)
             for minute, snap, running in drawn]
    choice = warm_sources(_plan(), warms)
    eligible = [(minute, snap) for minute, snap, running in drawn
                if snap == SNAP and not running]
    if eligible:
        assert choice.warm is not None and choice.warm in warms
        assert choice.warm.stamp == _at(max(eligible)[0])
        assert choice.sources == {"new-data": f"{choice.warm.name}-data"}
        assert choice.note is None
    else:
        assert choice.warm is None and choice.sources is None
        assert (choice.note is None) == (not warms)


# --- which warm copies a refresh removes ---------------------------------------------------


def test_superseded_are_exactly_the_older_copies_of_the_instance() -> None:
    oldest, older, kept, newer = _warm(_at(0)), _warm(_at(1)), _warm(_at(2)), _warm(_at(3))
    elsewhere = _warm(_at(0), instance="blog")
    assert superseded([newer, kept, older, elsewhere, oldest], "shop", kept) == [older, oldest]
    assert superseded([kept], "shop", kept) == []
    # A refresh begun in the same second is older too: one of the two must go.
    twin = replace(_warm(_at(2), snapshot=OTHER), container_id="id-twin")
    assert superseded([kept, twin], "shop", kept) == [twin]


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=8, unique=True), st.data())
def test_superseded_never_holds_the_newest_nor_the_kept(minutes: list[int],
                                                         data: st.DataObject) -> None:
    warms = [_warm(_at(minute)) for minute in minutes]
    kept = data.draw(st.sampled_from(warms))
    removed = superseded(warms, "shop", kept)
    newest = max(warms, key=lambda w: w.stamp)
    assert kept not in removed and all(w.stamp < kept.stamp for w in removed)
    assert newest not in removed
    assert len(removed) == sum(1 for w in warms if w.stamp < kept.stamp)
    if kept == newest:
        assert sorted([*removed, kept], key=lambda w: w.stamp) == \
            sorted(warms, key=lambda w: w.stamp)


# --- what the copy helper's output means ---------------------------------------------------


GNU_NO_REFLINK = ("copy cp: failed to clone '/to/.holdfast-reflink-probe' from "
                  "'/from/base/1/1259': Operation not supported")


@pytest.mark.parametrize(("stdout", "expected"), [
    ("reflink\n", VolumeCopy("reflink")),
    ("  reflink  \n\n", VolumeCopy("reflink")),
    ("earlier noise\nreflink\n", VolumeCopy("reflink")),
    (GNU_NO_REFLINK + "\n", VolumeCopy("copy", "no reflinks on this engine's volumes "
                                               "(Operation not supported): copied file by file")),
    ("copy cp: first complaint\ncp: failed to clone 'a' from 'b': Invalid argument\n",
     VolumeCopy("copy", "no reflinks on this engine's volumes (Invalid argument): "
                        "copied file by file")),
    ("copy\n", VolumeCopy("copy")),  # nothing to probe: an empty source, copied
    ("", VolumeCopy("copy")),
])
def test_the_copy_script_s_last_line_says_how_the_volume_was_filled(
        stdout: str, expected: VolumeCopy) -> None:
    assert copy_answer(stdout) == expected


def test_output_the_script_never_prints_is_taken_as_a_plain_copy_not_raised() -> None:
    # What the code does: anything but "reflink" is a copy, its last word quoted as the reason.
    assert copy_answer("Segmentation fault\n") == VolumeCopy(
        "copy", "no reflinks on this engine's volumes (fault): copied file by file")
    assert copy_answer("reflinks\n") == VolumeCopy("copy")
    assert copy_answer("reflink\nwarning: something\n").method == "copy"


@given(st.text())
def test_copy_answer_never_raises_and_claims_reflinks_only_for_a_reflink_line(text: str) -> None:
    answer = copy_answer(text)
    lines = text.strip().splitlines()
    assert answer.method == ("reflink" if lines and lines[-1].partition(" ")[0] == "reflink"
                             else "copy")
    assert answer.note is None or answer.method == "copy"


@given(st.text(st.characters(whitelist_categories=("L", "N", "Zs")), min_size=1).filter(
    lambda s: s.strip() != ""))
def test_the_reason_is_the_last_part_of_cp_s_complaint(reason: str) -> None:
    answer = copy_answer(f"copy cp: failed to clone 'x' from 'y': {reason}\n")
    assert answer == VolumeCopy("copy", f"no reflinks on this engine's volumes "
                                        f"({reason.strip()}): copied file by file")


def _run_script(source: Path, target: Path) -> str:
    script = docker_volumes._COPY_SCRIPT.replace("/from", str(source)).replace("/to", str(target))
    done = subprocess.run(["sh", "-c", script], capture_output=True, check=True, timeout=60)
    return done.stdout.decode()


@pytest.mark.skipif(shutil.which("sh") is None or shutil.which("cp") is None,
                    reason="needs sh and cp")
def test_the_real_script_s_output_parses_to_what_it_did(tmp_path: Path) -> None:
    source, target = tmp_path / "from", tmp_path / "to"
    (source / "sub").mkdir(parents=True)
    target.mkdir()
    (source / "sub" / "table").write_bytes(os.urandom(10_000))
    (source / "sub" / "table").chmod(0o600)
    (target / "stale").write_bytes(b"old")
    answer = copy_answer(_run_script(source, target))
    assert sorted(p.name for p in target.rglob("*")) == ["sub", "table"]
    assert (target / "sub" / "table").read_bytes() == (source / "sub" / "table").read_bytes()
    assert stat.S_IMODE((target / "sub" / "table").stat().st_mode) == 0o600
    if answer.method == "reflink":
        assert answer.note is None
    else:
        assert answer.method == "copy" and answer.note is not None
        assert answer.note.startswith("no reflinks on this engine's volumes (")
        assert answer.note.endswith("): copied file by file") and "()" not in answer.note


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs sh")
def test_the_real_script_copies_an_empty_source_without_a_note(tmp_path: Path) -> None:
    source, target = tmp_path / "from", tmp_path / "to"
    (source / "empty-dir").mkdir(parents=True)
    (source / "zero").write_bytes(b"")
    target.mkdir()
    assert copy_answer(_run_script(source, target)) == VolumeCopy("copy")
    assert sorted(p.name for p in target.iterdir()) == ["empty-dir", "zero"]
