"""Where ``holdfast serve`` may listen: anywhere, since every /v1 request needs a token;
turning authentication off (by name) is a warning, a loud one off loopback; a port in
use is answered in one line with exit 4."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import AddressInUse, InvalidInput
from service.entrypoints.daemon.binding import check_exposure, ensure_port_free, is_loopback
from service.entrypoints.error_table import exit_code_for

LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("localhost", True),
    ("LOCALHOST", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("192.168.1.10", False),
    ("10.0.0.1", False), ("::ffff:10.0.0.1", False), ("fe80::1", False),
    ("example.com", False), ("localhost.example.com", False), ("128.0.0.1", False),
    ("127.0.0.1 ", False), ("0", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@given(st.ip_addresses())
def test_only_127_8_and_1_are_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                                        ) -> None:
    if isinstance(address, ipaddress.IPv4Address):
        expected = address in LOOPBACK_V4
    else:
        mapped = address.ipv4_mapped
        expected = address == ipaddress.IPv6Address("::1") or (
            mapped is not None and mapped in LOOPBACK_V4)
    assert is_loopback(str(address)) is expected


@given(st.ip_addresses(), st.integers(1, 65535))
def test_with_authentication_on_any_address_is_served_without_a_warning(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    # Every /v1 request needs a token wherever the daemon listens.
    assert check_exposure(str(address), port, insecure_no_auth=False) is None


@given(st.ip_addresses(), st.integers(1, 65535))
def test_authentication_turned_off_is_always_a_one_line_warning(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    warning = check_exposure(str(address), port, insecure_no_auth=True)
    assert warning is not None and "\n" not in warning
    assert f"{address}:{port} WITHOUT authentication" in warning
    assert "treated as admin" in warning
    assert ("ON THE NETWORK" in warning) is not is_loopback(str(address))


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


def test_a_port_in_use_is_address_in_use_exit_4(taken_port: int) -> None:
    with pytest.raises(AddressInUse) as taken:
        ensure_port_free("127.0.0.1", taken_port)
    assert f"127.0.0.1:{taken_port}" in str(taken.value)
    assert "--port" in str(taken.value)
    assert exit_code_for(taken.value) == 4


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ensure_port_free("127.0.0.1", port)
    ensure_port_free("127.0.0.1", port)  # the check let go of it
    with socket.socket() as server:  # and a server can still listen there
        server.bind(("127.0.0.1", port))
        server.listen()
        assert server.getsockname()[1] == port


@pytest.mark.parametrize("host", ["no-such-host.invalid", "203.0.113.7"])
def test_an_address_this_machine_cannot_listen_on_is_invalid_input(host: str) -> None:
    with pytest.raises(InvalidInput, match=f"cannot listen on {host}:8420"):
        ensure_port_free(host, 8420)


def test_a_port_out_of_range_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="1-65535"):
        ensure_port_free("127.0.0.1", 70000)


# --- holdfast serve, in a process of its own -------------------------------------------


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    # WARNING: a fresh catalog's migration logs at INFO; what must not appear is
    # anything else (uvicorn's error, a traceback, a second line).
    environ.update(HOLDFAST_DATA_DIR=str(tmp_path / "data"), DOCKER_HOST="unix:///nonexistent",
                   HOLDFAST_LOG_LEVEL="WARNING", **env)
    return subprocess.run([sys.executable, "-m", "service.entrypoints.cli", "serve", *args],
                          env=environ, capture_output=True, text=True, timeout=120, check=False)


def test_serve_on_a_port_in_use_exits_4_in_one_line(tmp_path: Path, taken_port: int) -> None:
    done = serve(tmp_path, "--port", str(taken_port))
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"holdfast: cannot listen on 127.0.0.1:{taken_port}: the address "
                           "is already in use")


def test_serve_on_the_network_without_a_token_is_not_refused(tmp_path: Path) -> None:
    # Tokens are required per request (holdfast tokens create makes them), so the
    # address alone refuses nothing: a taken port is what stops this one.
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        done = serve(tmp_path, "--host", "0.0.0.0", "--port", str(port))
    assert done.returncode == 4, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"holdfast: cannot listen on 0.0.0.0:{port}: ")


def test_serve_with_the_risk_accepted_gets_as_far_as_the_port(tmp_path: Path) -> None:
    # The variable and the flag both accept the risk; the taken port then stops it.
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        by_variable = serve(tmp_path, HOLDFAST_API_HOST="0.0.0.0",
                            HOLDFAST_API_PORT=str(port), HOLDFAST_API_INSECURE_NO_AUTH="true")
        by_flag = serve(tmp_path, "--host", "0.0.0.0", "--port", str(port),
                        "--insecure-no-auth")
    for done in (by_variable, by_flag):
        assert done.returncode == 4, done.stderr
        [line] = done.stderr.splitlines()
        assert line.startswith(f"holdfast: cannot listen on 0.0.0.0:{port}: ")
