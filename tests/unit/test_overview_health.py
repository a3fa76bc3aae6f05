"""The overview's pure parts: what an instance's facts mean, and the totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from backup.alerts import Alarm, Condition
from backup.types import Snapshot, SnapshotStatus
from service.entrypoints.ui.rendering import (
    NONE_SHOWN,
    ago,
    human_bytes,
    human_seconds,
    safe_next,
)
from service.usecases.overview import Facts, Health, judge_health, stored_by_target

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def snap(status: SnapshotStatus = SnapshotStatus.COMPLETE, *, target: str = "local",
         size: int | None = 10, verdict: str | None = None, error: str | None = None) -> Snapshot:
    return Snapshot(id=f"s-{status}-{verdict}", instance="db", engine="postgres", target=target,
                    status=status, created_at=T0, data_key="k", finished_at=T0 + timedelta(5),
                    size_bytes=size, error=error,
                    verified_at=T0 if verdict else None,
                    verification={"result": verdict, "reason": "rows differ"} if verdict else None)


def test_each_state_and_its_reason() -> None:
    ok = snap(verdict="passed")
    assert judge_health(Facts(errors=["holdfast.schedule: bad cron"]))[0] == Health.LABEL_ERROR
    failed = judge_health(Facts(last_run=snap(SnapshotStatus.FAILED, error="auth failed")))
    assert failed == (Health.FAILING, "the last run failed: auth failed")
    alarm = Alarm(Condition.BACKUP, "db", T0, "backup of db failed: boom")
    assert judge_health(Facts(alarms=[alarm], last_run=ok))[0] == Health.FAILING
    assert judge_health(Facts(stale_reason="due by noon", last_run=ok)) == (Health.LATE,
                                                                          "due by noon")
    assert judge_health(Facts(missing=True, last_complete=ok))[0] == Health.MISSING
    assert judge_health(Facts())[0] == Health.NEW
    assert judge_health(Facts(last_complete=ok, last_run=ok))[0] == Health.UNVERIFIED
    bad_verdict = snap(verdict="failed")
    assert judge_health(Facts(last_complete=ok, last_verified=bad_verdict))[1].endswith(
        "rows differ")
    assert judge_health(Facts(last_complete=ok, last_run=ok, last_verified=ok))[0] == Health.OK
    down = judge_health(Facts(down_host="edge-b", last_run=snap(SnapshotStatus.FAILED),
                              last_complete=ok, last_verified=ok))
    assert down[0] == Health.HOST_DOWN and down[1].startswith("its host edge-b sends no")
    assert down[0].is_problem


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_the_worst_fact_wins(label_error: bool, failed: bool, stale: bool, missing: bool,
                             verified: bool, host_down: bool) -> None:
    facts = Facts(errors=["bad label"] if label_error else [],
                  down_host="edge-b" if host_down else None,
                  last_run=snap(SnapshotStatus.FAILED) if failed else snap(),
                  stale_reason="late" if stale else None, missing=missing,
                  last_complete=snap(), last_verified=snap(verdict="passed") if verified else None)
    health, reason = judge_health(facts)
    expected = (Health.LABEL_ERROR if label_error else Health.HOST_DOWN if host_down else
                Health.FAILING if failed else
                Health.LATE if stale else Health.MISSING if missing else
                Health.OK if verified else Health.UNVERIFIED)
    assert health == expected and reason and "\n" not in reason
    assert health.is_problem == (label_error or host_down or failed or stale or missing)


def test_stored_bytes_count_complete_snapshots_per_target() -> None:
    found = stored_by_target([snap(size=5), snap(size=7, target="s3"), snap(size=None),
                              snap(SnapshotStatus.FAILED, size=100)])
    assert found == {"local": 5, "s3": 7}


def test_figures_read_as_people_write_them() -> None:
    assert (human_bytes(None), human_bytes(512), human_bytes(1536)) == (NONE_SHOWN, "512 B",
                                                                      "1.5 KiB")
    assert human_bytes(3 * 1024**3) == "3.0 GiB"
    assert (human_seconds(2.5), human_seconds(75), human_seconds(7260)) == ("2.5s", "1m 15s",
                                                                           "2h 01m")
    assert ago(T0 - timedelta(minutes=2), T0) == "2m 00s ago"
    assert ago(T0 + timedelta(seconds=30), T0) == "in 30s"
    assert ago(None) == "never"


def test_after_sign_in_only_a_dashboard_path() -> None:
    assert safe_next("/ui/jobs") == "/ui/jobs"
    for elsewhere in (None, "", "https://evil.example/ui", "//evil.example", "/v1/tokens",
                      "/ui\\..\\x"):
        assert safe_next(elsewhere) == "/ui"
