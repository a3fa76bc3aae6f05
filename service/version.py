"""The installed Holdfast version, for ``holdfast --version``, ``/healthz`` and OpenAPI.

Read from the installed distribution's metadata, so the one place to change it is
pyproject.toml; a checkout run without installing (``python -m`` from the source
tree) reports ``0+unknown`` instead of failing. Only the standard library is
imported, so asking for the version costs nothing at start-up.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "holdfast"


@cache
def holdfast_version() -> str:
    """The version string of the installed ``holdfast`` distribution."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"
