"""Engine detection: pure functions of an image reference and a set of binaries.

The label ``holdfast.engine`` always wins. Otherwise the image's repository name
decides (``postgres``, ``bitnami/postgresql``, ``timescale/timescaledb`` …), and
failing that, the binaries the adapter found inside the container.
"""

from __future__ import annotations

from collections.abc import Collection

# Ordered: the first matching fragment wins, so "mariadb" is tested before "mysql".
_IMAGE_HINTS: tuple[tuple[str, str], ...] = (
    ("postgis", "postgres"),
    ("timescale", "postgres"),
    ("postgres", "postgres"),
    ("pgvector", "postgres"),
    ("mariadb", "mariadb"),
    ("mysql", "mysql"),
    ("percona", "mysql"),
    ("redis", "redis"),
    ("valkey", "redis"),
    ("keydb", "redis"),
)

# Binaries probed inside a container when the image name says nothing.
BINARY_HINTS: tuple[tuple[str, str], ...] = (
    ("pg_dump", "postgres"),
    ("mariadb-dump", "mariadb"),
    ("mysqldump", "mysql"),
    ("redis-server", "redis"),
)


def image_repository(image: str) -> str:
    """``registry:5000/team/postgres:15@sha256:…`` -> ``team/postgres``."""
    reference = image.split("@", 1)[0]
    parts = reference.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    last = parts[-1].split(":", 1)[0]
    return "/".join([*parts[:-1], last]).lower()


def detect_from_image(image: str) -> str | None:
    name = image_repository(image)
    basename = name.rsplit("/", 1)[-1]
    for fragment, engine in _IMAGE_HINTS:
        if fragment in basename:
            return engine
    return None


def detect_from_binaries(present: Collection[str]) -> str | None:
    for binary, engine in BINARY_HINTS:
        if binary in present:
            return engine
    return None


def detect_engine(
    image: str, labelled: str | None = None, binaries: Collection[str] | None = None
) -> str | None:
    """The engine for a container: label, then image name, then binaries."""
    if labelled:
        return labelled
    return detect_from_image(image) or (detect_from_binaries(binaries) if binaries else None)
