"""The web dashboard through FastAPI's TestClient, on the fakes: sign-in, its
cookie and CSRF checks, the overview, buttons and the scopes that hide them."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from backup.types import Snapshot, SnapshotStatus, utcnow
from service.entrypoints.api import create_app
from service.entrypoints.ui.session import TOKEN_COOKIE
from service.hosts import HostRecord
from service.records import InstanceRecord
from service.usecases import backups, tokens
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import TEST_TOKEN
from tests.usecases.entrypoints.helpers import add_db, wait_until
from tests.usecases.support import make_snapshot


@pytest.fixture
def web(world: FakeWorld, jobs: JobRunner) -> TestClient:
    """A client with no Authorization header: a browser, signing in by the form."""
    return TestClient(create_app(world.services, jobs), follow_redirects=False)


def backed_up(world: FakeWorld, name: str) -> Snapshot:
    return backups.execute_backup(world.services, backups.prepare_backup(world.services, name))


def sign_in(client: TestClient, token: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    form = client.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce, form.text
    answer = client.post("/ui/login", data={"token": token, "nonce": nonce.group(1),
                                            "next": "/ui"})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui"
    cookie = answer.headers["set-cookie"]
    assert f"{TOKEN_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie and "Path=/ui" in cookie
    page = client.get("/ui")
    assert page.status_code == 200, page.text
    csrf = re.search(r'"X-CSRF-Token": "([0-9a-f]+)"', page.text)
    assert csrf, page.text
    return csrf.group(1)


def test_a_page_without_a_session_goes_to_the_sign_in_form(web: TestClient) -> None:
    answer = web.get("/ui/jobs")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fjobs"
    form = web.get("/ui/login").text
    assert '<input type="password" id="token" name="token"' in form
    assert web.get("/").headers["location"] == "/ui"


def test_a_wrong_token_is_one_line_and_no_cookie(web: TestClient) -> None:
    form = web.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    answer = web.post("/ui/login", data={"token": "hf_wrong", "nonce": nonce.group(1)})
    assert answer.status_code == 401
    assert 'id="login-error"' in answer.text and "hf_wrong" not in answer.text
    assert TOKEN_COOKIE not in answer.headers.get("set-cookie", "")


def test_the_sign_in_form_refuses_a_post_without_its_nonce(web: TestClient) -> None:
    answer = web.post("/ui/login", data={"token": TEST_TOKEN, "nonce": "forged"})
    assert answer.status_code == 403
    assert TOKEN_COOKIE not in answer.headers.get("set-cookie", "")


def test_overview_lists_instances_failing_first(world: FakeWorld, web: TestClient) -> None:
    add_db(world, "good-db")
    add_db(world, "bad-db")
    add_db(world, "zz-db")
    backed_up(world, "good-db")
    backed_up(world, "zz-db")
    make_snapshot(world, "zz-db", at=utcnow(), status=SnapshotStatus.FAILED)
    sign_in(web, TEST_TOKEN)
    page = web.get("/ui").text
    rows = re.findall(r'data-instance="([^"]+)" data-health="([^"]+)"', page)
    assert rows == [("zz-db", "failing"), ("bad-db", "new"), ("good-db", "unverified")]
    assert 'id="total-failing">1<' in page and 'id="total-protected">1<' in page


def test_back_up_from_the_dashboard_needs_the_csrf_token(world: FakeWorld,
                                                         web: TestClient) -> None:
    add_db(world, "shop-db")
    csrf = sign_in(web, TEST_TOKEN)
    refused = web.post("/ui/instances/shop-db/backup", headers={"HX-Request": "true"})
    assert refused.status_code == 403 and "reload the page" in refused.text
    started = web.post("/ui/instances/shop-db/backup",
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert started.status_code == 202, started.text
    job_id = re.search(r'data-job="([^"]+)"', started.text)
    assert job_id
    wait_until(lambda: 'data-status="succeeded"' in web.get(f"/ui/jobs/{job_id.group(1)}").text)
    assert len(world.services.catalog.list_snapshots(instance="shop-db")) == 1


def test_a_request_from_another_site_is_refused(world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    csrf = sign_in(web, TEST_TOKEN)
    answer = web.post("/ui/instances/shop-db/backup",
                          headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert world.services.catalog.list_snapshots(instance="shop-db") == []


def test_a_read_only_token_sees_no_restore_or_delete_and_is_refused(
        world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    snapshot = backed_up(world, "shop-db")
    reader = tokens.create_token(world.services, "viewer", ["read"], None, None, utcnow())
    csrf = sign_in(web, reader.secret)
    page = web.get("/ui/instances/shop-db").text
    assert snapshot.id in page
    for button in ("Restore…", "Delete", "Back up now", ">Pin<"):
        assert button not in page
    forged = web.post(f"/ui/snapshots/{snapshot.id}/delete",
                          headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert forged.status_code == 403 and "admin" in forged.text
    assert world.services.catalog.get_snapshot(snapshot.id) is not None
    restore = web.post(f"/ui/snapshots/{snapshot.id}/restore",
                           data={"name": "copy", "csrf": csrf})
    assert restore.status_code == 403


def test_an_admin_sees_the_buttons_and_a_bad_restore_is_one_line(
        world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    snapshot = backed_up(world, "shop-db")
    csrf = sign_in(web, TEST_TOKEN)
    page = web.get("/ui/instances/shop-db").text
    for button in ("Restore…", "Delete", "Back up now", ">Pin<"):
        assert button in page
    dialog = web.get(f"/ui/snapshots/{snapshot.id}/restore").text
    assert 'value="shop-db-copy-' in dialog
    assert 'name="replace" value="shop-db"' in dialog  # the container a swap-in replaces
    bad = web.post(f"/ui/snapshots/{snapshot.id}/restore",
                       data={"name": "copy", "ttl": "forever", "csrf": csrf},
                       headers={"HX-Request": "true"})
    assert bad.status_code == 400, bad.text
    line = re.search(r'<p class="error" role="alert">(.*?) <button', bad.text)
    assert line and "ttl" in line.group(1).lower() and "Traceback" not in bad.text


def test_a_token_without_read_sees_no_page(world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    ci = tokens.create_token(world.services, "ci", ["backup"], None, None, utcnow())
    form = web.get("/ui/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
    assert nonce
    signed = web.post("/ui/login", data={"token": ci.secret, "nonce": nonce.group(1)})
    assert signed.status_code == 303
    page = web.get("/ui")
    assert page.status_code == 403 and "'read' scope" in html.unescape(page.text)
    assert "shop-db" not in page.text


def test_pin_unpin_and_the_refusals_the_cli_makes(world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    snapshot = backed_up(world, "shop-db")
    csrf = sign_in(web, TEST_TOKEN)
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    pinned = web.post(f"/ui/snapshots/{snapshot.id}/pin", headers=htmx)
    assert pinned.status_code == 200 and ">Unpin<" in pinned.text
    assert world.services.catalog.get_snapshot(snapshot.id).pinned  # type: ignore[union-attr]
    refused = web.post(f"/ui/snapshots/{snapshot.id}/delete", headers=htmx)
    assert refused.status_code == 409 and "unpin it first" in html.unescape(refused.text)
    unpinned = web.post(f"/ui/snapshots/{snapshot.id}/unpin", headers=htmx)
    assert unpinned.status_code == 200 and ">Pin<" in unpinned.text
    in_use = web.post("/ui/volumes/shop-db-vol/remove", headers=htmx)
    assert in_use.status_code == 409, in_use.text
    assert "shop-db-vol" in world.docker.volume_names()
    volumes = web.get("/ui/volumes").text
    assert 'data-volume="shop-db-vol"' in volumes and "shop-db" in volumes


def test_jobs_targets_and_sign_out(world: FakeWorld, web: TestClient) -> None:
    add_db(world, "shop-db")
    csrf = sign_in(web, TEST_TOKEN)
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    started = web.post("/ui/instances/shop-db/backup", headers=htmx)
    job_id = re.search(r'data-job="([^"]+)"', started.text)
    assert job_id
    wait_until(lambda: 'data-status="succeeded"' in web.get(f"/ui/jobs/{job_id.group(1)}").text)
    assert f'data-job="{job_id.group(1)}"' in web.get("/ui/jobs").text
    ended = web.post(f"/ui/jobs/{job_id.group(1)}/cancel", headers=htmx)
    assert ended.status_code == 409, ended.text
    health = web.get("/ui/targets/health").text
    assert 'data-target="local" class="ok"' in health
    assert 'data-target="local"' in web.get("/ui/targets").text
    out = web.post("/ui/logout", data={"csrf": csrf})
    assert out.status_code == 303 and f'{TOKEN_COOKIE}=""' in out.headers["set-cookie"]
    web.cookies.clear()
    assert web.get("/ui").status_code == 303


def test_an_instance_of_another_host_shows_that_host_and_whether_it_is_down(
        world: FakeWorld, web: TestClient) -> None:
    seen = utcnow() - timedelta(minutes=10)  # its daemon stopped beating long ago
    world.catalog.upsert_instance(InstanceRecord(
        name="edge-db", engine="fake", container_id="c" * 64, container_name="edge-db",
        image="fake/db:1", labels={}, error=None, first_seen=seen, last_seen=seen,
        host="edge-2"))
    world.catalog.save_host(HostRecord(name="edge-2", engine_version="27.0", instances=1,
                                       started_at=seen, last_heartbeat=seen,
                                       holdfast_version="test", runner="edge-2:1:1"))
    sign_in(web, TEST_TOKEN)
    page = web.get("/ui/instances/edge-db").text
    assert re.search(r"<dt>Host</dt><dd>edge-2 <span class=\"badge failing\">down</span>", page)
    # On the overview it sorts with the problems, its state saying why.
    overview = web.get("/ui").text
    row = re.search(r'<tr data-instance="edge-db" data-health="host down">(.*?)</tr>', overview,
                    re.S)
    assert row is not None, overview
    assert '<td data-host-status="stale">edge-2</td>' in row.group(1)
    assert "its host edge-2 sends no heartbeat" in row.group(1)


def test_verify_buttons_for_another_host_s_snapshot_queue_the_job_for_that_host(
        world: FakeWorld, web: TestClient) -> None:
    now = utcnow()
    world.catalog.upsert_instance(InstanceRecord(
        name="edge-db", engine="fake", container_id="c" * 64, container_name="edge-db",
        image="fake/db:1", labels={}, error=None, first_seen=now, last_seen=now,
        host="edge-2"))
    world.catalog.save_host(HostRecord(name="edge-2", engine_version="27.0", instances=1,
                                       started_at=now, last_heartbeat=now,
                                       holdfast_version="test", runner="edge-2:1:1"))
    snapshot = make_snapshot(world, "edge-db")
    htmx = {"HX-Request": "true", "X-CSRF-Token": sign_in(web, TEST_TOKEN)}
    for button, kind in (("verify", "verify-restore"), ("check", "verify")):
        answer = web.post(f"/ui/snapshots/{snapshot.id}/{button}", headers=htmx)
        assert answer.status_code == 202, answer.text
        job_id = re.search(r'data-job="([^"]+)"', answer.text)
        assert job_id, answer.text
        job = world.catalog.get_job(job_id.group(1))
        assert job is not None
        assert (job.kind, job.host, job.status, job.snapshot_id) == (
            kind, "edge-2", "queued", snapshot.id)
