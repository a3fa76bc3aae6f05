"""A real headless chromium for the dashboard's browser tests, driven by Selenium.

It runs Debian's ``chromium`` through Debian's ``chromium-driver`` (``/usr/bin/chromium``
and ``/usr/bin/chromedriver``; ``HOLDFAST_CHROMIUM`` and ``HOLDFAST_CHROMEDRIVER``
override them), installed by ``.ci/run``. The driver's path is given to Selenium, so
Selenium Manager is never run and downloads nothing (``SE_OFFLINE`` and
``SE_AVOID_STATS`` are set too, in case it were). Chromium is started with its
background traffic switched off and a host-resolver rule that makes every name but
``localhost`` and ``127.0.0.1`` unresolvable, so a page can reach this machine only.

The ``browser`` fixture (registered for every test in tests/conftest.py) yields a
:class:`Browser`. One chromium serves the whole session (it starts in under a
second, but that adds up over many tests); each test gets it reset: cookies and the
storage of the origins the previous test opened cleared, ``about:blank``, the
:data:`DESKTOP` viewport, the console log emptied. When a test that used it fails,
a screenshot of the page is saved as ``<test>-failed.png`` in :func:`screenshot_dir`.
Without chromium or chromedriver the fixture skips with the ``apt-get install`` line,
or fails with it when ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple
from urllib.parse import urljoin, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CHROMIUM = "/usr/bin/chromium"
DEFAULT_CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL_HINT = (
    "apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core"
)
#: The tallest a :meth:`Browser.screenshot` grows the viewport to capture the page.
SCREENSHOT_MAX_HEIGHT = 4000

CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where chromium's sandbox refuses to start
    "--disable-dev-shm-usage",
    "--disable-gpu",
    # No traffic off this machine: no background requests, updates, sync, first-run
    # pages, default apps, translation, hints or casting; no proxy; and every host
    # name but the loopback ones resolves to nothing.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
)


class Viewport(NamedTuple):
    """A viewport in CSS pixels; ``mobile`` emulates a phone's (the page's
    ``<meta name="viewport">`` is honoured, as a phone does)."""

    width: int
    height: int
    mobile: bool = False


DESKTOP = Viewport(1280, 900)
PHONE = Viewport(390, 844, mobile=True)


def chromium_path() -> str:
    return os.environ.get("HOLDFAST_CHROMIUM") or DEFAULT_CHROMIUM


def chromedriver_path() -> str:
    return os.environ.get("HOLDFAST_CHROMEDRIVER") or DEFAULT_CHROMEDRIVER


def missing_browser() -> str | None:
    """One line saying what is missing to run the browser tests, or None."""
    for what, path, variable in (("chromium", chromium_path(), "HOLDFAST_CHROMIUM"),
                                 ("chromedriver", chromedriver_path(), "HOLDFAST_CHROMEDRIVER")):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{what} is not executable at {path} (set {variable}); install: {INSTALL_HINT}"
    return None


def screenshot_dir() -> Path:
    """Where screenshots go: ``HOLDFAST_SCREENSHOT_DIR``, else ``<repo>/build/screenshots``
    (created)."""
    directory = Path(os.environ.get("HOLDFAST_SCREENSHOT_DIR") or REPO / "build" / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def start_driver() -> webdriver.Chrome:
    """A new headless chromium session (see :data:`CHROMIUM_ARGS`), its console
    log recorded."""
    os.environ.setdefault("SE_OFFLINE", "true")
    os.environ.setdefault("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path()
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=chromedriver_path()))
    driver.set_page_load_timeout(30)
    return driver


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "screenshot"
    return stem if stem.endswith(".png") else f"{stem}.png"


class Browser:
    """A chromium page for a test: open URLs, resize, wait, screenshot, read the
    console. ``driver`` is the Selenium WebDriver for anything else (clicks go
    through the elements :meth:`wait_for` returns)."""

    def __init__(self, driver: webdriver.Chrome, base_url: str | None = None) -> None:
        self.driver = driver
        #: Prefixed to the URLs :meth:`open` is given that start with ``/``.
        self.base_url = base_url
        self.viewport = DESKTOP
        self.origins: set[str] = set()
        self._log: list[dict[str, Any]] = []
        self.set_width(DESKTOP)

    def open(self, url: str) -> None:
        """Load ``url`` (``/path`` is joined to :attr:`base_url`) and wait for it to
        load. A page chromium cannot load (a refused connection, an unresolvable
        name) raises :class:`WebDriverException`."""
        if url.startswith("/") and self.base_url:
            url = urljoin(self.base_url, url)
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            self.origins.add(f"{parts.scheme}://{parts.netloc}")
        self.driver.get(url)

    def set_width(self, px: int | Viewport) -> None:
        """Resize the viewport: to a :class:`Viewport` (:data:`DESKTOP`, :data:`PHONE`),
        or to ``px`` CSS pixels wide, as a desktop, keeping the height."""
        viewport = px if isinstance(px, Viewport) else Viewport(px, self.viewport.height)
        self._apply(viewport.width, viewport.height, viewport.mobile)
        self.viewport = viewport

    def _apply(self, width: int, height: int, mobile: bool) -> None:
        # The window size alone leaves the viewport smaller by chromium's (headless)
        # toolbar and never narrower than 500 px; the override makes it exact.
        with contextlib.suppress(WebDriverException):
            self.driver.set_window_size(width, height)
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
        })

    def screenshot(self, name: str) -> Path:
        """Save the page as ``<screenshot_dir>/<name>.png``: the viewport grown to the
        page's height (at most :data:`SCREENSHOT_MAX_HEIGHT` px) for the shot, then
        restored. The file's path."""
        path = screenshot_dir() / _safe_name(name)
        height = self.driver.execute_script(
            "return Math.max(document.body ? document.body.scrollHeight : 0,"
            " document.documentElement ? document.documentElement.scrollHeight : 0)"
        )
        tall = max(self.viewport.height, min(int(height or 0), SCREENSHOT_MAX_HEIGHT))
        try:
            if tall != self.viewport.height:
                self._apply(self.viewport.width, tall, self.viewport.mobile)
            path.write_bytes(self.driver.get_screenshot_as_png())
        finally:
            if tall != self.viewport.height:
                self._apply(*self.viewport)
        return path

    def wait_for(self, css_selector: str, text: str | None = None,
                 timeout: float = 30) -> WebElement:
        """The first displayed element matching ``css_selector`` (and whose visible
        text contains ``text``, if given), once there is one; :class:`TimeoutException`
        naming what was awaited and what matched instead after ``timeout`` seconds."""

        def found(driver: webdriver.Chrome) -> WebElement | Literal[False]:
            for element in driver.find_elements(By.CSS_SELECTOR, css_selector):
                try:
                    if element.is_displayed() and (text is None or text in element.text):
                        return element
                except StaleElementReferenceException:
                    continue
            return False

        try:
            element = WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(found)
        except TimeoutException:
            seen = []
            with contextlib.suppress(WebDriverException):
                for element in self.driver.find_elements(By.CSS_SELECTOR, css_selector)[:3]:
                    seen.append(repr(element.text[:80]) if element.is_displayed() else "(hidden)")
            wanted = f"{css_selector!r}" + (f" containing {text!r}" if text is not None else "")
            raise TimeoutException(
                f"no displayed {wanted} on {self.driver.current_url} after {timeout:g} s; "
                f"matching: {', '.join(seen) or 'none'}"
            ) from None
        return element

    def _drain_log(self) -> None:
        get_log: Callable[[str], list[dict[str, Any]]] = self.driver.get_log  # untyped upstream
        self._log.extend(get_log("browser"))

    def console_errors(self) -> list[dict[str, Any]]:
        """The browser console's SEVERE entries (uncaught errors, ``console.error``,
        failed requests) since the test began or :meth:`clear_console`, oldest first:
        Selenium's dicts with ``level``, ``message``, ``source``, ``timestamp``."""
        self._drain_log()
        return [entry for entry in self._log if entry.get("level") == "SEVERE"]

    def clear_console(self) -> None:
        """Forget the console entries so far."""
        self._drain_log()
        self._log.clear()

    def close(self) -> None:
        """End the chromium session (the ``browser`` fixture starts a new one for the
        next test)."""
        with contextlib.suppress(Exception):
            self.driver.quit()


def start_browser(base_url: str | None = None) -> Browser:
    """A :class:`Browser` on a chromium of its own, outside pytest; ``close()`` it."""
    return Browser(start_driver(), base_url)


@dataclass
class _Chromium:
    """The session's chromium, started on first use and again if a test closed it."""

    driver: webdriver.Chrome | None = None
    failure: str | None = None
    startup_seconds: float | None = None

    def get(self) -> webdriver.Chrome:
        if self.failure is not None:
            pytest.fail(self.failure, pytrace=False)
        if self.driver is not None:
            try:
                self.driver.current_url  # noqa: B018 - a round trip: is it alive?
                return self.driver
            except Exception:
                self.stop()
        started = time.monotonic()
        try:
            self.driver = start_driver()
        except WebDriverException as exc:
            first = (exc.msg or str(exc)).strip().splitlines()[0]
            self.failure = f"chromium via {chromedriver_path()} did not start: {first}"
            pytest.fail(self.failure, pytrace=False)
        self.startup_seconds = time.monotonic() - started
        return self.driver

    def reset(self, browser: Browser) -> None:
        """Leave nothing of ``browser``'s test for the next one."""
        driver = browser.driver
        with contextlib.suppress(Exception):
            handles = driver.window_handles
            for handle in handles[1:]:
                driver.switch_to.window(handle)
                driver.close()
            driver.switch_to.window(handles[0])
            driver.get("about:blank")
            driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
            for origin in browser.origins:
                driver.execute_cdp_cmd("Storage.clearDataForOrigin",
                                       {"origin": origin, "storageTypes": "all"})

    def stop(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):
                self.driver.quit()
            self.driver = None


@pytest.fixture(scope="session")
def _chromium_session() -> Iterator[_Chromium]:
    chromium = _Chromium()
    yield chromium
    chromium.stop()


@pytest.fixture
def browser(_chromium_session: _Chromium, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """A :class:`Browser` at ``about:blank``, :data:`DESKTOP` size, no cookies, an
    empty console. Skips (fails under ``CI=true``) without chromium or chromedriver."""
    missing = missing_browser()
    if missing is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing, pytrace=False)
        pytest.skip(missing)
    page = Browser(_chromium_session.get())
    page.clear_console()
    request.node.stash[_BROWSER_KEY] = page
    try:
        yield page
    finally:
        _chromium_session.reset(page)


_BROWSER_KEY = pytest.StashKey[Browser]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A screenshot of the page when a test that used ``browser`` fails."""
    outcome: Any = yield
    report: pytest.TestReport = outcome.get_result()
    page = item.stash.get(_BROWSER_KEY, None)
    if page is None or report.when != "call" or not report.failed:
        return
    with contextlib.suppress(Exception):
        path = page.screenshot(f"{item.nodeid}-failed")
        report.sections.append(("browser", f"screenshot of the failed page: {path}"))


__all__: list[str] = [
    "DESKTOP", "PHONE", "Browser", "Viewport", "browser", "chromedriver_path", "chromium_path",
    "missing_browser", "screenshot_dir", "start_browser", "start_driver",
]
