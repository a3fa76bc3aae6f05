"""Connection URL templates: how a script reaches a restored database, without its password.

A restore's result tells the next step where the new database is; these pure
functions turn a snapshot's recorded environment into a URL for each engine,
such as ``postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/appdb``. They are given
the non-secret environment and only the *names* of the secrets the container
has, so a password can never end up in a URL: it is always a ``{VARIABLE}``
placeholder the caller fills from its own copy of the secret (percent-encoded
if it holds reserved characters such as ``@`` or ``/``). User and database
names are percent-encoded here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from urllib.parse import quote


def _part(text: str) -> str:
    return quote(text, safe="")


def _url(scheme: str, user: str | None, password_var: str | None, host: str,
         port: str | int, path: str | None) -> str:
    auth = ""
    if user is not None or password_var is not None:
        auth = _part(user or "") + (f":{{{password_var}}}" if password_var else "") + "@"
    return f"{scheme}://{auth}{host}:{port}" + (f"/{_part(path)}" if path else "")


def postgres_url(env: Mapping[str, str], secret_names: Collection[str], *,
                 host: str = "HOST", port: str | int = "PORT") -> str:
    """The official image's conventions: ``POSTGRES_USER`` (default ``postgres``),
    ``POSTGRES_DB`` (default: the user's name), ``POSTGRES_PASSWORD`` (absent with
    ``trust`` authentication)."""
    user = env.get("POSTGRES_USER") or "postgres"
    password = "POSTGRES_PASSWORD" if "POSTGRES_PASSWORD" in secret_names else None
    return _url("postgresql", user, password, host, port, env.get("POSTGRES_DB") or user)


def mysql_url(env: Mapping[str, str], secret_names: Collection[str], *,
              host: str = "HOST", port: str | int = "PORT",
              families: tuple[str, ...] = ("MARIADB", "MYSQL")) -> str:
    """The application account if the snapshot has one (``MARIADB_USER`` with
    ``MARIADB_PASSWORD``, or the ``MYSQL_`` names; the first family in
    ``families`` wins), else root with its password; the database of
    ``MARIADB_DATABASE``/``MYSQL_DATABASE`` if set. Scheme ``mysql://``, which
    MariaDB's clients and drivers accept as well."""
    database = next((env[f"{f}_DATABASE"] for f in families if env.get(f"{f}_DATABASE")), None)
    for family in families:
        user = env.get(f"{family}_USER")
        if user and f"{family}_PASSWORD" in secret_names:
            return _url("mysql", user, f"{family}_PASSWORD", host, port, database)
    root_var = next((f"{f}_ROOT_PASSWORD" for f in families
                     if f"{f}_ROOT_PASSWORD" in secret_names), None)
    return _url("mysql", "root", root_var, host, port, database)


def redis_url(env: Mapping[str, str], secret_names: Collection[str], *,
              host: str = "HOST", port: str | int = "PORT") -> str:
    """``redis://:{REDIS_PASSWORD}@HOST:PORT/0`` when the server has a password
    (``REDIS_PASSWORD`` or ``--requirepass``, recorded under that name), else
    ``redis://HOST:PORT/0``."""
    password = "REDIS_PASSWORD" if "REDIS_PASSWORD" in secret_names else None
    return _url("redis", None, password, host, port, "0")
