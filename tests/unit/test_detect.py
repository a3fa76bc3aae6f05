"""Engine detection from image names and binaries."""

from __future__ import annotations

import pytest

from backup.engines.detect import detect_engine, image_repository


@pytest.mark.parametrize(
    ("image", "engine"),
    [
        ("postgres:15", "postgres"),
        ("postgres", "postgres"),
        ("docker.io/library/postgres:16-alpine", "postgres"),
        ("bitnami/postgresql:15", "postgres"),
        ("postgis/postgis:15-3.4", "postgres"),
        ("timescale/timescaledb:latest-pg15", "postgres"),
        ("registry.local:5000/team/postgres@sha256:" + "a" * 64, "postgres"),
        ("mariadb:11", "mariadb"),
        ("mysql:8.0", "mysql"),
        ("percona/percona-server:8.0", "mysql"),
        ("redis:7", "redis"),
        ("valkey/valkey:8", "redis"),
        ("holdfast-test/postgres:15", "postgres"),
    ],
)
def test_engine_from_image(image: str, engine: str) -> None:
    assert detect_engine(image) == engine


def test_unknown_image_falls_back_to_binaries() -> None:
    assert detect_engine("acme/app:1") is None
    assert detect_engine("acme/app:1", binaries={"pg_dump", "psql"}) == "postgres"
    assert detect_engine("acme/app:1", binaries={"mariadb-dump", "mysqldump"}) == "mariadb"
    assert detect_engine("acme/app:1", binaries={"sh"}) is None


def test_label_wins() -> None:
    assert detect_engine("postgres:15", labelled="volume") == "volume"


def test_image_repository_strips_registry_tag_and_digest() -> None:
    assert image_repository("registry.example.com:5000/a/b:1@sha256:00") == "a/b"
    assert image_repository("localhost/x:1") == "x"
    assert image_repository("library/postgres") == "library/postgres"
