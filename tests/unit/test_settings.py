"""Settings: read from an explicit environment, targets discovered by prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup.errors import InvalidInput
from service.settings import Settings


def test_defaults_put_everything_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path)})
    assert settings.catalog_url == f"sqlite:///{tmp_path}/catalog.sqlite3"
    assert settings.targets == {"local": (tmp_path / "snapshots").as_uri()}
    assert (settings.api_host, settings.api_port) == ("127.0.0.1", 8420)


def test_targets_and_overrides(tmp_path: Path) -> None:
    settings = Settings.load({
        "HOLDFAST_DATA_DIR": str(tmp_path),
        "HOLDFAST_TARGET_OFFSITE": "s3://bucket/prefix",
        "HOLDFAST_TARGET_LOCAL": "file:///srv/backups",
        "HOLDFAST_DATABASE_URL": "postgresql://holdfast:pw@db/holdfast",
        "HOLDFAST_API_PORT": "9000",
    })
    assert settings.targets == {"local": "file:///srv/backups", "offsite": "s3://bucket/prefix"}
    assert settings.catalog_url == "postgresql://holdfast:pw@db/holdfast"
    assert "pw" not in repr(settings)
    assert settings.api_port == 9000


def test_bad_target_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match="HOLDFAST_TARGET_BAD-NAME"):
        Settings.load({"HOLDFAST_TARGET_BAD-NAME": "file:///x"})
