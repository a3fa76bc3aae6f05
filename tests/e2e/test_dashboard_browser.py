"""The dashboard in a real headless chromium against a real daemon and real Postgres containers.

Sign in through the form; the overview lists the instances with a failing one
first; a backup started from the instance page runs to complete under the
eyes of its event stream; a restore from the dialog makes a TTL copy that
exists in Docker and shows its connection details (no password); a read-only
token sees no restore or delete button, and a forged POST with it is refused.
Each page is saved as a screenshot at desktop and phone widths.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from typing import Any

import docker
import pytest
from selenium.webdriver.common.by import By

from tests.harness.api import TEST_TOKEN
from tests.harness.browser import DESKTOP, PHONE, Browser
from tests.harness.daemon import Daemon
from tests.harness.docker_fixtures import PostgresFactory, container_env, psql

pytestmark = [pytest.mark.docker, pytest.mark.browser]

LOCAL_SCRAM = "--auth-local=scram-sha-256 --auth-host=scram-sha-256"


def sign_in(page: Browser, daemon: Daemon, token: str, *, snap: bool = False) -> None:
    page.base_url = daemon.url
    page.open("/ui")
    page.wait_for('input[type="password"][name="token"]')
    assert "/ui/login" in page.driver.current_url and token not in page.driver.current_url
    if snap:
        snap_both(page, "sign-in")
    field = page.wait_for('input[type="password"][name="token"]')
    field.send_keys(token)
    page.wait_for('button[type="submit"]').click()
    page.wait_for("table.instances, p.card")
    assert token not in page.driver.current_url


def snap_both(page: Browser, name: str) -> None:
    for viewport, suffix in ((DESKTOP, "desktop"), (PHONE, "phone")):
        page.set_width(viewport)
        page.screenshot(f"{name}-{suffix}")
    page.set_width(DESKTOP)


def forged_post(page: Browser, path: str) -> int:
    """POST ``path`` from the page's own origin with its CSRF token: only the
    token's scopes stand in the way."""
    status: int = page.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const csrf = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];"
        "fetch(arguments[0], {method: 'POST', headers: {'X-CSRF-Token': csrf}})"
        ".then(r => done(r.status));", path)
    return status


def test_dashboard_backs_up_restores_and_hides_what_a_token_may_not_do(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: PostgresFactory,
    docker_client: docker.DockerClient, browser: Browser,
) -> None:
    prefix = f"ui-{os.urandom(3).hex()}"
    shop, broken = f"{prefix}-shop", f"{prefix}-broken"
    labels = {"holdfast.scope": prefix}
    source = postgres_container_factory(name=shop, labels={"holdfast.name": shop, **labels})
    psql(source, "CREATE TABLE orders AS SELECT g AS id FROM generate_series(1, 500) g")
    failing = postgres_container_factory(
        name=broken, labels={"holdfast.name": broken, **labels},
        env={"POSTGRES_PASSWORD": f"pw-{secrets.token_hex(8)}",
             "POSTGRES_INITDB_ARGS": LOCAL_SCRAM})
    # Its role's password changes under it: every backup of it fails.
    psql(failing, f"ALTER ROLE {container_env(failing)['POSTGRES_USER']} "
                  f"PASSWORD 'wrong-{secrets.token_hex(8)}'")
    daemon = daemon_factory(HOLDFAST_SCOPE=prefix).start()
    daemon.wait_for(lambda: {shop, broken} <= daemon.instance_names(), 30, "discovery")
    assert daemon.wait_job(daemon.start_backup(shop)["id"])["status"] == "succeeded"
    assert daemon.wait_job(daemon.start_backup(broken)["id"])["status"] == "failed"
    made = daemon.post("/v1/tokens", json={"name": "viewer", "scopes": ["read"]})
    assert made.status_code == 201, made.text
    viewer = made.json()["token"]
    copy_name: str | None = None
    try:
        sign_in(browser, daemon, TEST_TOKEN, snap=True)
        rows = browser.driver.find_elements(By.CSS_SELECTOR, "tr[data-instance]")
        listed = [(r.get_attribute("data-instance"), r.get_attribute("data-health")) for r in rows]
        assert listed[0] == (broken, "failing"), listed
        assert (shop, "unverified") in listed
        shop_row = browser.wait_for(f'tr[data-instance="{shop}"]')
        assert "ago" in shop_row.text
        snap_both(browser, "overview")

        browser.open(f"/ui/instances/{shop}")
        browser.wait_for("button.primary", text="Back up now").click()
        browser.wait_for('#jobs article[data-status="succeeded"]', timeout=120)
        snap_both(browser, "instance")

        browser.open(f"/ui/instances/{shop}")
        browser.wait_for("button", text="Restore…").click()
        name_field = browser.wait_for("#restore-name")
        copy_name = name_field.get_attribute("value")
        assert copy_name and copy_name.startswith(f"{shop}-copy-")
        browser.wait_for("#restore-ttl").send_keys("15m")
        snap_both(browser, "restore-dialog")
        browser.wait_for('#dialog button[type="submit"]').click()
        details = browser.wait_for("#restore-job dl.connection", timeout=180)
        assert copy_name in details.text
        assert container_env(source)["POSTGRES_PASSWORD"] not in browser.driver.page_source
        snap_both(browser, "restore")
        copy = docker_client.containers.get(copy_name)
        assert copy.status == "running"

        for page, ready in (("jobs", "article.job"), ("volumes", "table.volumes"),
                            ("targets", "#target-health li")):
            browser.open(f"/ui/{page}")
            browser.wait_for(ready, timeout=60)
            snap_both(browser, page)
        assert browser.console_errors() == []

        # A read-only token: no restore, delete or backup buttons, and the server refuses.
        browser.driver.delete_all_cookies()
        sign_in(browser, daemon, viewer)
        browser.open(f"/ui/instances/{shop}")
        snapshot_id = browser.wait_for("tr[data-snapshot]").get_attribute("data-snapshot")
        source_html = browser.driver.page_source
        for button in ("Restore…", ">Delete<", "Back up now"):
            assert button not in source_html
        assert forged_post(browser, f"/ui/snapshots/{snapshot_id}/delete") == 403
        assert forged_post(browser, f"/ui/instances/{shop}/backup") == 403
        kept = daemon.get(f"/v1/snapshots/{snapshot_id}")
        assert kept.status_code == 200, kept.text
    finally:
        if copy_name:
            _remove_copy(docker_client, copy_name)


def _remove_copy(client: docker.DockerClient, name: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        container: Any = client.containers.get(name)
        mounts = [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Name")]
        container.remove(force=True)
        for volume in mounts:
            with contextlib.suppress(docker.errors.APIError):
                client.volumes.get(volume).remove(force=True)
