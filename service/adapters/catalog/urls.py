"""Catalog database URLs and failures: which backends, how a URL is shown, what failed.

Kept apart from :mod:`service.adapters.catalog.db` (engines, migrations) so the
repository can raise :class:`CatalogUnavailable` without importing the module
that builds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backup.errors import HoldfastError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

# SQLAlchemy is imported inside the functions that need it: the CLI's stdlib
# reader (service.adapters.catalog.sqlite_reader) raises CatalogUnavailable
# without loading it.

SUPPORTED_BACKENDS = ("sqlite", "postgresql")


class CatalogUnavailable(HoldfastError):
    """The catalog database cannot be reached, or its schema cannot be brought up to date."""

    retryable = True


def normalize_url(url: str) -> str:
    """Send ``postgres://`` and ``postgresql://`` URLs to psycopg 3; leave others alone."""
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("postgres", "postgresql"):
        return f"postgresql+psycopg://{rest}"
    return url


def redact_url(url: str | URL) -> str:
    """The URL as it may be shown to a user or logged: no password, anywhere."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        # SQLAlchemy's own message would echo the whole string, password included.
        return "<unparsable database URL>"
    if "password" not in parsed.query:
        return parsed.render_as_string(hide_password=True)
    # The rendering would percent-encode a "***" placed in the query.
    masked = parsed.update_query_dict({"password": "REDACTED"})
    return masked.render_as_string(hide_password=True).replace("=REDACTED", "=***")


def describe_error(error: BaseException, url: str | URL) -> str:
    """The first line of a driver error, with the URL's password masked just in case."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, DBAPIError

    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    text = lines[0] if lines else type(cause).__name__
    try:
        password = make_url(url).password
    except ArgumentError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


