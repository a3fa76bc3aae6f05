"""``holdfast --server URL``: the options that point the CLI at a remote daemon,
checked, and the :class:`~service.adapters.api_client.client.RemoteBackend` made from them.

The server is ``--server`` or ``HOLDFAST_SERVER`` (an ``http://`` or
``https://`` URL with no user, query or fragment); the token is ``--token``,
else the first line of ``--token-file``, else ``HOLDFAST_TOKEN`` (an option
wins over the environment). ``--token`` on a shared machine shows in ``ps``:
prefer ``--token-file`` or the variable there. TLS is verified, against
``--ca-bundle``/``HOLDFAST_CA_BUNDLE`` if given. httpx is imported only here,
only in remote mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from backup import errors

if TYPE_CHECKING:
    from service.adapters.api_client.client import RemoteBackend
    from service.adapters.api_client.errors import ErrorClasses, StatusClasses


@dataclass(frozen=True)
class RemoteTarget:
    """Where remote commands go: the server's URL and how to authenticate.
    Its repr never shows the token."""

    server: str
    token: str | None = None
    ca_bundle: str | None = None

    def __repr__(self) -> str:
        return f"RemoteTarget(server={self.server!r}, token={'***' if self.token else None})"


def checked_server(url: str) -> str:
    """``url`` without a trailing slash, if it is one the CLI can call;
    :class:`~backup.errors.InvalidInput` (one line) otherwise."""
    shown = errors.quoted(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise errors.InvalidInput(f"--server {shown}: not a URL; give it as "
                                  "http://HOST:8420 or https://HOST") from None
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        without_user = errors.quoted(url.split("@")[-1])
        raise errors.InvalidInput(f"--server {without_user}: give an http:// or https:// URL "
                                  "such as http://HOST:8420")
    if parts.username is not None or parts.password is not None:
        raise errors.InvalidInput("--server: put no user or password in the URL; send the "
                                  "token with --token-file FILE or HOLDFAST_TOKEN")
    if parts.query or parts.fragment:
        raise errors.InvalidInput(f"--server {shown}: give the daemon's base URL, without "
                                  "a query or fragment")
    return url.rstrip("/")


def read_token_file(path: Path) -> str:
    """The token in ``path`` (its first line); one line naming the file if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"--token-file {str(path)[:200]}: cannot read it "
                                  f"({type(exc).__name__}); give a file holding the token") \
            from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise errors.InvalidInput(f"--token-file {str(path)[:200]} is empty; put the token "
                                  "(holdfast tokens create prints it) in it")
    return token


def remote_target(server: str | None, token: str | None, token_file: Path | None,
                  env_token: str | None, ca_bundle: Path | None) -> RemoteTarget | None:
    """The remote target the root options name, or None for local mode."""
    if server is None or server == "":
        return None
    chosen = token or (read_token_file(token_file) if token_file is not None else None) \
        or env_token or None
    if ca_bundle is not None and not ca_bundle.is_file():
        raise errors.InvalidInput(f"--ca-bundle {str(ca_bundle)[:200]}: no such file; give a "
                                  "PEM file of the CA certificates to trust")
    return RemoteTarget(checked_server(server), chosen,
                        str(ca_bundle) if ca_bundle is not None else None)


def error_classes() -> tuple[ErrorClasses, StatusClasses]:
    """The error classes by name (every subclass of the error tree the error
    table knows of) and, for a name this CLI lacks, by HTTP status (of the
    table's rows of each status, the most general class)."""
    from service.entrypoints.error_table import ERROR_TABLE

    by_name: dict[str, type[errors.HoldfastError]] = {}
    pending: list[type[errors.HoldfastError]] = [errors.HoldfastError]
    while pending:
        kind = pending.pop()
        by_name.setdefault(kind.__name__, kind)
        pending.extend(kind.__subclasses__())
    by_status: dict[int, type[errors.HoldfastError]] = {}
    for kind, outcome in ERROR_TABLE:
        known = by_status.get(outcome.http_status)
        if known is None or len(kind.__mro__) < len(known.__mro__):
            by_status[outcome.http_status] = kind
    return by_name, by_status


class _OnFirstUse(Mapping[Any, type[errors.HoldfastError]]):
    """One of :func:`error_classes`' maps, built when an error first needs it:
    the error table imports the daemon's modules, which a command that
    succeeds has no use for (its start-up stays light)."""

    def __init__(self, which: int) -> None:
        self._which = which
        self._built: Mapping[Any, type[errors.HoldfastError]] | None = None

    def _map(self) -> Mapping[Any, type[errors.HoldfastError]]:
        if self._built is None:
            self._built = error_classes()[self._which]
        return self._built

    def __getitem__(self, key: Any) -> type[errors.HoldfastError]:
        return self._map()[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._map())

    def __len__(self) -> int:
        return len(self._map())


def remote_backend(target: RemoteTarget) -> RemoteBackend:
    """A backend calling ``target``'s API."""
    from service.adapters.api_client.client import RemoteBackend, http_client

    return RemoteBackend(http_client(target.server, target.token, target.ca_bundle),
                         target.server, _OnFirstUse(0), _OnFirstUse(1))
