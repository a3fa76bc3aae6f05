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
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backup.alerts import DEFAULT_EVENTS, EventName, parse_events
from backup.errors import InvalidInput
from service.hosts import check_host_name

TARGET_PREFIX = "HOLDFAST_TARGET_"
TARGET_RECIPIENTS_SUFFIX = "_AGE_RECIPIENTS"
_TARGET_NAME = re.compile(r"[A-Z0-9_]+")
_SCOPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
NOTIFY_PREFIX = "HOLDFAST_NOTIFY_"
_CHANNEL_SECRET, _CHANNEL_EVENTS = "_SECRET", "_EVENTS"
_CHANNEL_URL = re.compile(r"[a-z][a-z0-9+.-]{0,31}://\S+", re.IGNORECASE)
MAX_CHANNELS = 32
MAX_CHANNEL_URL = 2048
WEBHOOK_SCHEMES = ("http", "https")


MAX_PUBLIC_URL = 512


class ChannelSetting(BaseModel):
    """One notification channel, ``HOLDFAST_NOTIFY_<NAME>=<url>``: Holdfast's own
    signed JSON webhook for an ``http(s)://`` URL, apprise for any other scheme.
    The URL and secret are secrets (a chat token sits in the URL)."""

    model_config = ConfigDict(frozen=True)

    name: str
    url: SecretStr
    secret: SecretStr | None = None
    events: frozenset[EventName] = DEFAULT_EVENTS

    @property
    def scheme(self) -> str:
        return urlsplit(self.url.get_secret_value()).scheme.lower()

    @property
    def kind(self) -> str:
        return "webhook" if self.scheme in WEBHOOK_SCHEMES else "apprise"

    def described(self) -> str:
        """What logs and the API may show: the webhook's scheme and host, or
        the apprise service's scheme; never a path, a user or a token."""
        if self.kind == "webhook":
            host = urlsplit(self.url.get_secret_value()).hostname or "?"
            return f"{self.scheme}://{host}"
        return f"apprise {self.scheme}://"


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
    notify_channels: dict[str, ChannelSetting] = Field(default_factory=dict)
    """Channel name -> its ``HOLDFAST_NOTIFY_<NAME>`` (with ``_SECRET``, ``_EVENTS``)."""
    notify_retry_for: float = Field(default=600.0, ge=0, le=86_400)
    """Seconds a failed delivery is retried for (with back-off) before it is recorded failed."""
    public_url: str | None = Field(default=None, max_length=MAX_PUBLIC_URL,
                                   pattern=r"^https?://[^\s/?#]+[^\s?#]*$")
    """Where people reach this daemon (``https://holdfast.example``): the base of
    the link each notification carries; unset, the address it serves on."""
    watch_interval: float = Field(default=30.0, ge=1, le=3600)
    """Seconds between the daemon's checks for stale instances."""
    target_check_interval: float = Field(default=300.0, ge=0, le=86_400)
    """Seconds between probes of every target for ``target.unreachable`` (0: none)."""
    scope: str | None = None
    """Manage only containers labelled ``holdfast.scope=<scope>``; unset, only
    containers without that label (:func:`service.ports.in_scope`)."""
    host_name: str | None = None
    """The name this daemon's engine has in the fleet (:mod:`service.hosts`);
    unset, the engine's own name."""
    heartbeat_interval: float = Field(default=15.0, ge=1, le=3600)
    """Seconds between the daemon's heartbeats in the catalog's hosts."""
    claim_interval: float = Field(default=0.5, ge=0.05, le=60)
    """Seconds between the daemon's looks for requests other daemons queued
    for its host (:mod:`service.usecases.fleet`)."""

    @field_validator("host_name")
    @classmethod
    def _host_name_value(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_host_name(value)
            except InvalidInput as exc:
                raise ValueError(str(exc).removeprefix("HOLDFAST_HOST_NAME ")) from None
        return value

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
        # Parsed here, never from one variable: HOLDFAST_NOTIFY_CHANNELS is a channel.
        own = set(cls.model_fields) - {"notify_channels"}
        channels = notify_channels(env, reserved=own)
        settings = cls.model_validate({k: v for k, v in fields.items() if k in own})
        settings.targets = {"local": (settings.data_dir / "snapshots").as_uri(), **targets}
        unknown = sorted(set(recipients) - set(settings.targets))
        if unknown:
            raise InvalidInput(f"{TARGET_PREFIX}{unknown[0].upper()}{TARGET_RECIPIENTS_SUFFIX} "
                               f"names no configured target; configured: "
                               f"{', '.join(sorted(settings.targets))}")
        settings.target_recipients = recipients
        settings.notify_channels = channels
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


def notify_channels(env: Mapping[str, str], *, reserved: set[str]) -> dict[str, ChannelSetting]:
    """The ``HOLDFAST_NOTIFY_<NAME>`` channels in ``env``, with their
    ``_SECRET`` and ``_EVENTS``. Names that are settings of their own
    (``HOLDFAST_NOTIFY_RETRY_FOR``) are not channels. Raises InvalidInput
    naming the variable, never echoing a URL (it may hold a token)."""
    urls: dict[str, str] = {}
    extras: dict[str, dict[str, str]] = {}
    for key, value in env.items():
        if not key.startswith(NOTIFY_PREFIX) or not value or \
                key[len("HOLDFAST_"):].lower() in reserved:
            continue
        name, part = key[len(NOTIFY_PREFIX):], "url"
        for suffix in (_CHANNEL_SECRET, _CHANNEL_EVENTS):
            if name.endswith(suffix):
                name, part = name[:-len(suffix)], suffix
        if not _TARGET_NAME.fullmatch(name):
            raise InvalidInput(f"{key}: channel names are letters, digits and _")
        if part == "url":
            urls[name] = value.strip()
        else:
            extras.setdefault(name, {})[part] = value
    orphans = sorted(set(extras) - set(urls))
    if orphans:
        raise InvalidInput(f"{NOTIFY_PREFIX}{orphans[0]}{next(iter(extras[orphans[0]]))} is set "
                           f"but {NOTIFY_PREFIX}{orphans[0]} (the channel's URL) is not")
    if len(urls) > MAX_CHANNELS:
        raise InvalidInput(f"{len(urls)} notification channels are configured; "
                           f"the most is {MAX_CHANNELS}")
    return {name.lower(): _channel(name, url, extras.get(name, {}))
            for name, url in sorted(urls.items())}


def _channel(name: str, url: str, extras: Mapping[str, str]) -> ChannelSetting:
    variable = NOTIFY_PREFIX + name
    if len(url) > MAX_CHANNEL_URL or not _CHANNEL_URL.fullmatch(url):
        raise InvalidInput(f"{variable} is not a notification URL: use https://host/path "
                           "(Holdfast's signed webhook) or an apprise URL such as "
                           f"ntfy://host/topic, at most {MAX_CHANNEL_URL} characters")
    if urlsplit(url).scheme.lower() in WEBHOOK_SCHEMES and not urlsplit(url).hostname:
        raise InvalidInput(f"{variable}: a webhook URL needs a host, as in https://host/path")
    events = DEFAULT_EVENTS
    if _CHANNEL_EVENTS in extras:
        try:
            events = parse_events(extras[_CHANNEL_EVENTS], source=variable + _CHANNEL_EVENTS)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    secret = extras.get(_CHANNEL_SECRET)
    return ChannelSetting(name=name.lower(), url=SecretStr(url), events=events,
                          secret=None if secret is None else SecretStr(secret))
