"""The daemon lock, held by one process and tried by another: refused naming the
holder (host, pid, since), and free again once the holder is SIGKILLed, on a
data directory, a SQLite catalog and a PostgreSQL catalog; and two real
``holdfast serve`` on one data directory, the second exiting 4 in one line.

The holder is always a separate process (``python -c``), since what is being
tested is what the kernel or the database server does when a process dies.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.errors import Conflict, DaemonAlreadyRunning
from service.adapters.catalog.lock import DAEMON_LOCK_KEY, PostgresLock, daemon_lock_for
from service.entrypoints.error_table import exit_code_for
from service.ports import DaemonOwner
from tests.harness.daemon import REPO_ROOT, Daemon, holdfast_env

HOLD = """
import sys, time
from pathlib import Path
from service.adapters.catalog.lock import daemon_lock_for
from service.ports import DaemonOwner
host = sys.argv[3] if len(sys.argv) > 3 else None
lock = daemon_lock_for(sys.argv[1], Path(sys.argv[2]), host)  # kept: dies with its object
lock.acquire(DaemonOwner.of_this_process())
print("held", flush=True)
time.sleep(600)
"""


def hold(url: str, data_dir: Path, timeout: float = 30.0,
         host: str | None = None) -> subprocess.Popen[str]:
    """A process that takes the daemon lock for (``url``, ``data_dir``, ``host``)
    and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, url, str(data_dir),
                             *([host] if host else [])], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != "held":
        proc.kill()
        _, err = proc.communicate(timeout=30)
        pytest.fail(f"the holder did not take the lock: {line!r} {err[-2000:]}")
    return proc


@pytest.fixture
def holders() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def refusal(url: str, data_dir: Path) -> DaemonAlreadyRunning:
    lock = daemon_lock_for(url, data_dir)
    with pytest.raises(DaemonAlreadyRunning) as caught:
        lock.acquire(DaemonOwner.of_this_process())
    return caught.value


def names(error: DaemonAlreadyRunning, proc: subprocess.Popen[str]) -> None:
    """The refusal names the holding process: host, pid and when it started."""
    assert re.fullmatch(
        rf"host {re.escape(socket.gethostname())}, pid {proc.pid}, "
        r"since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error.holder), error.holder
    assert error.holder in str(error)
    assert "\n" not in str(error)


def test_a_second_daemon_on_one_catalog_is_refused_until_the_first_is_killed(
        db_url: str, tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    # Different data directories: only the catalog (a SQLite file outside both,
    # or a PostgreSQL database) is shared, so its own lock is what refuses.
    first = hold(db_url, tmp_path / "data-1")
    holders.append(first)

    error = refusal(db_url, tmp_path / "data-2")
    names(error, first)
    assert error.what.startswith("catalog ")
    assert isinstance(error, Conflict) and exit_code_for(error) == 4

    kill(first)
    lock = daemon_lock_for(db_url, tmp_path / "data-2")
    lock.acquire(DaemonOwner.of_this_process())  # nothing stale blocks it
    try:
        mine = refusal(db_url, tmp_path / "data-3")
        assert f"pid {os.getpid()}," in mine.holder
    finally:
        lock.release()
    # Released: the next one takes it at once.
    again = daemon_lock_for(db_url, tmp_path / "data-3")
    again.acquire(DaemonOwner.of_this_process())
    again.release()


def test_a_second_daemon_on_one_data_directory_is_refused_until_the_first_is_killed(
        tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{data_dir / 'catalog.sqlite3'}"  # the default: inside the data dir
    first = hold(url, data_dir)
    holders.append(first)

    error = refusal(url, data_dir)
    names(error, first)
    assert error.what == f"data directory {data_dir}"
    # The data directory alone is enough to refuse, whatever the catalog.
    names(refusal("sqlite:///:memory:", data_dir), first)

    kill(first)
    second = hold(url, data_dir)  # a fresh process, as a restarted daemon is
    holders.append(second)
    names(refusal(url, data_dir), second)


@pytest.mark.postgres_catalog
def test_the_postgres_lock_is_per_database(pg_database: str, tmp_path: Path,
                                           holders: list[subprocess.Popen[str]]) -> None:
    holders.append(hold(pg_database, tmp_path / "data-1"))
    other = pg_database.rsplit("/", 1)[0] + "/postgres"  # another database, same server
    # The same database is refused while the first holder runs...
    with pytest.raises(DaemonAlreadyRunning):
        PostgresLock(pg_database, key=DAEMON_LOCK_KEY).acquire(DaemonOwner.of_this_process())
    # ...another one on the same server is not, and is held until released.
    lock = PostgresLock(other, key=DAEMON_LOCK_KEY)
    lock.acquire(DaemonOwner.of_this_process())
    try:
        with pytest.raises(DaemonAlreadyRunning):
            PostgresLock(other, key=DAEMON_LOCK_KEY).acquire(DaemonOwner.of_this_process())
    finally:
        lock.release()


@pytest.mark.postgres_catalog
def test_on_postgres_the_lock_is_per_host_so_a_fleet_shares_one_catalog(
        pg_database: str, tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    first = hold(pg_database, tmp_path / "data-a", host="edge-a")
    holders.append(first)
    # Another host's daemon takes its own lock on the same catalog...
    other = daemon_lock_for(pg_database, tmp_path / "data-b", "edge-b")
    other.acquire(DaemonOwner.of_this_process())
    try:
        # ...and a second daemon under edge-a's name is refused, naming the first.
        clash = daemon_lock_for(pg_database, tmp_path / "data-c", "edge-a")
        with pytest.raises(DaemonAlreadyRunning) as caught:
            clash.acquire(DaemonOwner.of_this_process())
        names(caught.value, first)
        assert caught.value.what.startswith("host edge-a of catalog ")
        assert str(caught.value).endswith("give this one its own HOLDFAST_HOST_NAME")
    finally:
        other.release()


def test_a_second_daemon_on_a_sqlite_catalog_is_told_a_fleet_needs_postgres(
        tmp_path: Path, holders: list[subprocess.Popen[str]]) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'catalog.sqlite3'}"
    holders.append(hold(url, tmp_path / "data-a", host="edge-a"))
    error = refusal(url, tmp_path / "data-b")
    assert "share a PostgreSQL catalog (HOLDFAST_DATABASE_URL=postgresql://...)" in str(error)
    assert "\n" not in str(error)


# --- holdfast serve, twice ------------------------------------------------------------


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    # No Docker engine is needed: the daemon serves and retries discovery.
    running = Daemon(tmp_path, env={"DOCKER_HOST": "unix:///nonexistent"})
    yield running
    running.close()


def test_a_second_holdfast_serve_exits_4_in_one_line_naming_the_first(
        daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()  # waits for /healthz
    assert daemon.client.get("/healthz").status_code == 200
    env = holdfast_env(daemon.data_dir, {"DOCKER_HOST": "unix:///nonexistent"})

    second = subprocess.run(
        [sys.executable, "-m", "service.entrypoints.cli", "serve", "--port", "0"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)

    assert second.returncode == 4, second.stdout + second.stderr
    [line] = second.stderr.splitlines()
    assert line.startswith(f"holdfast: another holdfast daemon is already running on data "
                           f"directory {daemon.data_dir} (host {socket.gethostname()}, "
                           f"pid {daemon.pid}, since "), line
    assert daemon.alive() and daemon.client.get("/healthz").status_code == 200

    # One-shot commands do not take the lock: they work beside the daemon.
    listed = subprocess.run(
        [sys.executable, "-m", "service.entrypoints.cli", "snapshots", "--json"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert (listed.returncode, listed.stdout.strip()) == (0, "[]"), listed.stderr
