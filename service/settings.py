"""Holdfast's configuration: one pydantic-settings object, built once at start-up.

Everything comes from the environment (``HOLDFAST_*``, plus ``DOCKER_HOST`` and
boto3's own ``AWS_*`` chain, which are left to their libraries). Storage targets
are the open-ended family ``HOLDFAST_TARGET_<NAME>=url``; ``local`` always
exists and defaults to ``$HOLDFAST_DATA_DIR/snapshots``. Nothing here runs at
import time: :meth:`Settings.load` is called by the entry points and the result
passed down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backup.errors import InvalidInput

TARGET_PREFIX = "HOLDFAST_TARGET_"
TARGET_RECIPIENTS_SUFFIX = "_AGE_RECIPIENTS"
_TARGET_NAME = re.compile(r"[A-Z0-9_]+")
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOLDFAST_", env_ignore_empty=True,
                                      extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path("~/.local/share/holdfast").expanduser())
    database_url: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8420
    api_token: SecretStr | None = None
    api_insecure_no_auth: bool = False
    """Serve without authentication: every request is treated as admin, and a
    warning is logged at start (:func:`service.entrypoints.daemon.binding.check_exposure`)."""
    metrics_token_required: bool = False
    """``/metrics`` needs a token with the ``read`` scope; off, it is open."""
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    ready_timeout: float = 180.0
    """Seconds a restored container may take to accept connections."""
    job_workers: int = Field(default=2, ge=1)
    """Snapshots (and restores) run at once; the rest queue."""
    shutdown_grace: float = Field(default=60.0, ge=0)
    """Seconds running snapshots may take to finish after SIGTERM before they are cancelled."""
    copy_reap_interval: float = Field(default=30.0, ge=1, le=3600)
    """Seconds between the daemon's sweeps for copies whose TTL has passed."""
    helper_image: str = "debian:bookworm-slim"
    """Image for short-lived helper containers (volume archives, clones): sh and GNU tar."""
    targets: dict[str, str] = Field(default_factory=dict)
    age_recipients: str | None = None
    """Age recipients every target encrypts to (a comma list or a recipients
    file); ``target_recipients`` wins for its targets (:mod:`backup.encryption`)."""
    target_recipients: dict[str, str] = Field(default_factory=dict)
    """Target name -> its own ``HOLDFAST_TARGET_<NAME>_AGE_RECIPIENTS``."""
    identity_file: Path | None = None
    """The age identity restores and verifications read encrypted snapshots
    with (the CLI's ``--identity``); read when needed, never stored."""
    scope: str | None = None
    """Manage only containers labelled ``holdfast.scope=<scope>``; unset, only
    containers without that label (:func:`service.ports.in_scope`)."""

    @field_validator("scope")
    @classmethod
    def _scope_value(cls, value: str | None) -> str | None:
        if value is not None and not _SCOPE.fullmatch(value):
            raise ValueError("a scope is 1-63 letters, digits, '.', '_' or '-', starting "
                             "with a letter or digit, as in holdfast.scope=team-a")
        return value

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("identity_file")
    @classmethod
    def _identity_path(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment (``os.environ`` by default) into settings."""
        env = os.environ if environ is None else environ
        targets: dict[str, str] = {}
        recipients: dict[str, str] = {}
        for key, value in env.items():
            if key.startswith(TARGET_PREFIX) and value:
                suffix = key[len(TARGET_PREFIX):]
                chosen = targets
                if suffix.endswith(TARGET_RECIPIENTS_SUFFIX):
                    suffix, chosen = suffix[:-len(TARGET_RECIPIENTS_SUFFIX)], recipients
                if not _TARGET_NAME.fullmatch(suffix):
                    raise InvalidInput(f"{key}: target names are letters, digits and _")
                chosen[suffix.lower()] = value
        fields = {name[len("HOLDFAST_"):].lower(): value for name, value in env.items()
                  if name.startswith("HOLDFAST_") and not name.startswith(TARGET_PREFIX)
                  and value}
        settings = cls.model_validate({k: v for k, v in fields.items() if k in cls.model_fields})
        settings.targets = {"local": (settings.data_dir / "snapshots").as_uri(), **targets}
        unknown = sorted(set(recipients) - set(settings.targets))
        if unknown:
            raise InvalidInput(f"{TARGET_PREFIX}{unknown[0].upper()}{TARGET_RECIPIENTS_SUFFIX} "
                               f"names no configured target; configured: "
                               f"{', '.join(sorted(settings.targets))}")
        settings.target_recipients = recipients
        return settings

    def recipients_setting(self, target: str) -> tuple[str, str] | None:
        """``(variable, value)`` of the recipients ``target`` encrypts to, if any:
        its own setting, else the global one."""
        if target in self.target_recipients:
            return (f"{TARGET_PREFIX}{target.upper()}{TARGET_RECIPIENTS_SUFFIX}",
                    self.target_recipients[target])
        if self.age_recipients:
            return "HOLDFAST_AGE_RECIPIENTS", self.age_recipients
        return None

    @property
    def catalog_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'catalog.sqlite3'}"
