"""Host names, their status from the last heartbeat, and the clash of two daemons
under one name: pure decisions of :mod:`service.hosts`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import InvalidInput
from service.hosts import (
    HOST_NAME_MAX,
    HostRecord,
    check_host_name,
    host_json,
    host_name_from_engine,
    host_status,
    name_clash,
)

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
HOST = HostRecord(name="edge-1", engine_version="24.0.7", instances=2,
                  started_at=NOW - timedelta(hours=1), last_heartbeat=NOW - timedelta(seconds=5),
                  holdfast_version="0.1.0", runner="edge-1:100:1")


@given(st.text(max_size=100))
def test_a_host_name_is_accepted_only_as_documented(name: str) -> None:
    valid = (0 < len(name) <= HOST_NAME_MAX and name.isascii() and name[0].isalnum()
             and all(c.isalnum() or c in "_.-" for c in name))
    if valid:
        assert check_host_name(name) == name
    else:
        with pytest.raises(InvalidInput, match="give 1 to 64 letters") as refused:
            check_host_name(name)
        assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


@given(st.text(max_size=300))
def test_any_engine_name_makes_a_valid_host_name(engine_name: str) -> None:
    assert check_host_name(host_name_from_engine(engine_name))


def test_the_engine_name_is_kept_when_it_is_one_already() -> None:
    assert host_name_from_engine("build-box.lan") == "build-box.lan"
    assert host_name_from_engine("") == "docker"
    assert host_name_from_engine("my box") == "my-box"


def test_a_host_is_stale_after_three_missed_heartbeats() -> None:
    assert host_status(HOST, NOW, 15) == "alive"
    assert host_status(replace(HOST, last_heartbeat=NOW - timedelta(seconds=45)), NOW, 15) == \
        "alive"
    assert host_status(replace(HOST, last_heartbeat=NOW - timedelta(seconds=46)), NOW, 15) == \
        "stale"
    shown = host_json(HOST, NOW, 15)
    assert (shown["status"], shown["seconds_since_heartbeat"], shown["instances"]) == \
        ("alive", 5, 2)


def test_a_live_daemon_keeps_its_name_from_another() -> None:
    clash = name_clash(HOST, "other:7:7", NOW, 15, other_may_run=True)
    assert clash is not None and "edge-1" in clash and "HOLDFAST_HOST_NAME" in clash
    # Its own name, a stale holder, a holder known dead, or no holder: free.
    assert name_clash(HOST, HOST.runner, NOW, 15, other_may_run=True) is None
    stale = replace(HOST, last_heartbeat=NOW - timedelta(minutes=5))
    assert name_clash(stale, "other:7:7", NOW, 15, other_may_run=True) is None
    assert name_clash(HOST, "other:7:7", NOW, 15, other_may_run=False) is None
    assert name_clash(None, "other:7:7", NOW, 15, other_may_run=True) is None
