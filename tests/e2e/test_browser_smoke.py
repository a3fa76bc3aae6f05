"""The browser harness itself (tests/harness/browser.py), on a page of its own: Debian's
chromium starts headless, runs a page's script, resizes, screenshots, reports the
console's errors, and reaches nothing but this machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By

from tests.harness.browser import DESKTOP, PHONE, Browser

pytestmark = pytest.mark.browser

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>smoke</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
<p id="state">waiting</p>
<button id="go" onclick="document.getElementById('state').textContent = 'clicked';
                         console.error('smoke: clicked');">Go</button>
<div style="height: 1500px"></div>
</body></html>
"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_click_runs_the_pages_script_and_the_screenshot_is_a_png(
        browser: Browser, page_url: str) -> None:
    browser.base_url = page_url
    browser.open("/")
    browser.wait_for("#state", text="waiting")
    assert browser.console_errors() == []

    browser.wait_for("#go").click()

    assert browser.wait_for("#state", text="clicked", timeout=5).text == "clicked"
    errors = browser.console_errors()
    assert len(errors) == 1 and "smoke: clicked" in errors[0]["message"], errors
    shot = browser.screenshot("smoke-desktop")
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The page is taller than the viewport: the shot is too, and the viewport is back.
    height = int.from_bytes(shot.read_bytes()[20:24], "big")
    assert height > DESKTOP.height
    assert browser.driver.execute_script("return innerHeight") == DESKTOP.height


def test_the_viewport_is_exactly_desktop_or_phone(browser: Browser, page_url: str) -> None:
    browser.open(page_url)
    size = "return [innerWidth, innerHeight]"
    assert browser.driver.execute_script(size) == [DESKTOP.width, DESKTOP.height]
    browser.set_width(PHONE)
    assert browser.driver.execute_script(size) == [PHONE.width, PHONE.height]
    browser.set_width(800)
    assert browser.driver.execute_script(size) == [800, PHONE.height]


def test_a_name_off_this_machine_does_not_resolve(browser: Browser) -> None:
    try:
        browser.open("http://example.com/")
    except WebDriverException as exc:
        assert "ERR_NAME_NOT_RESOLVED" in str(exc)
    assert "Example Domain" not in browser.driver.title
    assert "Example Domain" not in browser.driver.find_element(By.TAG_NAME, "body").text
