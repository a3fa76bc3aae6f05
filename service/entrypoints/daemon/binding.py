"""Where ``holdfast serve`` may listen, checked before anything starts.

The API restores snapshots, deletes them and removes volumes, so every ``/v1``
request needs a token (an API token from the catalog, or
``HOLDFAST_API_TOKEN``) wherever the daemon listens; the one way to serve
without is to say so by name (``--insecure-no-auth`` or
``HOLDFAST_API_INSECURE_NO_AUTH=true``), and then :func:`check_exposure`
returns the warning to log: a loud one on any address but the loopback one
(127.0.0.0/8, ``::1``, ``localhost``).
:func:`ensure_port_free` binds the address the way the server will (every
address the host resolves to, ``SO_REUSEADDR``), so a port in use is one line
and exit 4 instead of uvicorn's log line and exit 1 after the catalog was
opened and discovery had started. The server binds again right after; a
program that takes the port in between still makes uvicorn fail.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from backup.errors import AddressInUse, InvalidInput

INSECURE_FLAG = "--insecure-no-auth"
INSECURE_VARIABLE = "HOLDFAST_API_INSECURE_NO_AUTH=true"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine: ``localhost``
    or an address in 127.0.0.0/8 or ``::1`` (also IPv4-mapped). Anything else,
    a wildcard (``0.0.0.0``, ``::``) or a name included, is the network."""
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_exposure(host: str, port: int, *, insecure_no_auth: bool) -> str | None:
    """None when the API on ``host:port`` requires tokens (always, unless told
    otherwise); the warning to log when the user turned authentication off,
    louder on an address the network can reach."""
    if not insecure_no_auth:
        return None
    if is_loopback(host):
        return (f"serving on {host}:{port} WITHOUT authentication ({INSECURE_FLAG}): every "
                "request is treated as admin; any local user or container that reaches "
                "this address can restore, delete snapshots and remove volumes")
    return (f"serving on {host}:{port} WITHOUT authentication ({INSECURE_FLAG}) ON THE NETWORK: "
            "every request is treated as admin; anyone who can reach it can restore, delete "
            f"snapshots and remove volumes; drop {INSECURE_FLAG} and use API tokens "
            "(holdfast tokens create)")


def ensure_port_free(host: str, port: int) -> None:
    """Bind ``host:port`` as the server will and let go again. Raises
    :class:`AddressInUse` (exit 4) when something listens there already, and
    :class:`InvalidInput` (exit 2) for an address this machine cannot listen on."""
    where = f"{host}:{port}"
    if not 0 <= port <= 65535:  # getaddrinfo would take 70000 for 4464
        raise InvalidInput(f"cannot listen on {where}: set --port/HOLDFAST_API_PORT to 1-65535")
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as exc:
        raise InvalidInput(f"cannot listen on {where}: {_reason(exc)}; set --host/"
                           "HOLDFAST_API_HOST to an address of this machine and --port/"
                           "HOLDFAST_API_PORT to 1-65535") from exc
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise AddressInUse(
                        f"cannot listen on {where}: the address is already in use (another "
                        "holdfast serve, or another program); stop it, or choose another "
                        "port with --port or HOLDFAST_API_PORT") from exc
                raise InvalidInput(f"cannot listen on {where}: {_reason(exc)}; choose "
                                   "another --host/HOLDFAST_API_HOST or --port/"
                                   "HOLDFAST_API_PORT (ports below 1024 need root)") from exc


def _reason(exc: BaseException) -> str:
    return str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
