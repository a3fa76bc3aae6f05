"""Parsing ``holdfast.*`` container labels into an instance policy.

Pure functions of a label dictionary. A label that does not parse never raises
out of :func:`parse_labels`: the problems are collected in
``InstancePolicy.errors`` so the daemon can list the instance with its error
and skip it until it is fixed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "holdfast."
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
RETENTION_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
SCHEDULE_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# \Z, not $: ``$`` also matches before a trailing newline, and callers use ``.match``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_TARGET_NAME = re.compile(r"[a-z0-9_]+")
# [0-9], not \d or str.isdigit(): those accept any Unicode digit (Arabic-Indic, full-width).
_DIGITS = re.compile(r"[0-9]+")
_DURATION = re.compile(r"([0-9]+)([smhd])")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL = 1
"""The shortest ``@every`` interval, in seconds."""
MAX_INTERVAL = 366 * 86400
"""The longest ``@every`` interval, in seconds (366 days: a yearly run, leap years included)."""
INTERVAL_RANGE = "1s to 366d"
AFTER_BACKUP = "after-backup"
"""The ``holdfast.verify`` value that verifies each new snapshot once it is complete."""
MAX_RETENTION = 1_000_000
"""The largest count a retention rule takes."""
_CRON_FIELDS = ("minute", "hour", "day", "month", "weekday")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {month: number + 1 for number, month in enumerate(_MONTHS)},
    {day: number for number, day in enumerate(_WEEKDAYS)},
)
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
"""Days in each month in a leap year: the days a cron day field can ever meet."""
_CRON_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class InstancePolicy:
    """What the labels ask for. ``errors`` lists every label that did not parse."""

    enabled: bool
    name: str
    engine: str | None = None
    schedule: str | None = None
    retention: Mapping[str, int] = field(default_factory=dict)
    target: str = "local"
    databases: tuple[str, ...] = ()
    stop_during_backup: bool = False
    verify: str | None = None
    """``holdfast.verify``: when the daemon runs a verified restore of the
    newest complete snapshot: a schedule (as ``holdfast.schedule``) or
    :data:`AFTER_BACKUP`."""
    encrypt: bool | None = None
    """``holdfast.encrypt``: None follows the target (encrypted iff it has
    recipients); True and False are checked against it
    (:func:`backup.encryption.encrypt_label_problem`)."""
    notify: tuple[str, ...] | None = None
    """``holdfast.notify``: the channels this instance's events go to (None: every channel)."""
    ping: str | None = None
    """``holdfast.ping``: the dead-man ping URL its runs call (start, success, fail)."""
    stale_after: int | None = None
    """``holdfast.stale_after``: seconds without a complete snapshot before it is
    stale (None: two runs of its schedule, :func:`backup.alerts.stale_deadline`)."""
    warm: bool = False
    """``holdfast.warm``: keep a warm copy of the newest snapshot that passed a
    verified restore, which restores of that snapshot clone (:mod:`restore.warm`)."""
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def instance_name(labels: Mapping[str, str], container_name: str) -> str:
    """The stable instance name: the label, else compose ``project-service``,
    else the container name. It survives re-creating the container."""
    explicit = labels.get(PREFIX + "name", "").strip()
    if explicit:
        return explicit
    project, service = labels.get(COMPOSE_PROJECT), labels.get(COMPOSE_SERVICE)
    if project and service:
        return f"{project}-{service}"
    return container_name.lstrip("/")


def parse_bool(value: str) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    return None


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for an error message, cut to ``limit`` characters: an
    error names the bad value but never echoes a huge input back whole."""
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``6h``, ``1d`` -> seconds, from 1s to 366d. Raises ValueError."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{_shown(text.strip())} is not a duration like 90s, 15m, 6h or 1d")
    digits, unit = match.groups()
    # A longer digit string is out of range anyway; int() of thousands of digits raises.
    seconds = int(digits) * _DURATION_UNITS[unit] if len(digits) <= 12 else MAX_INTERVAL + 1
    if seconds < MIN_INTERVAL:
        raise ValueError(f"interval {_shown(text.strip())} must be longer than zero; "
                         f"use {INTERVAL_RANGE}")
    if seconds > MAX_INTERVAL:
        raise ValueError(f"interval {_shown(text.strip())} is longer than 366d; "
                         f"use {INTERVAL_RANGE}")
    return seconds


def validate_schedule(text: str) -> str:
    """Accept 5-field cron, the @aliases and ``@every <duration>`` (1s to 366d);
    return it normalised. A cron that can never fire (``0 0 31 2 *``) is refused."""
    value = " ".join(text.split())
    if value in SCHEDULE_ALIASES:
        return value
    if value.startswith("@every"):
        parse_duration(value[len("@every"):])
        return value
    if value.startswith("@"):
        raise ValueError(f"unknown schedule {_shown(value)}; use @hourly, @daily, @weekly, "
                         "@monthly or @every <duration>")
    cron_values(value)
    return value


def validate_verify(text: str) -> str:
    """``holdfast.verify``: :data:`AFTER_BACKUP`, or a schedule as
    :func:`validate_schedule` accepts (``@daily``, ``@weekly``, a cron, ``@every``);
    returned normalised. Raises ValueError."""
    value = " ".join(text.split())
    if value.lower() == AFTER_BACKUP:
        return AFTER_BACKUP
    try:
        return validate_schedule(value)
    except ValueError as exc:
        raise ValueError(f"{exc}; or use {AFTER_BACKUP}") from None


def cron_values(schedule: str) -> tuple[frozenset[int], ...]:
    """The minutes, hours, days, months and weekdays (0 = Sunday; 7 is folded
    into 0) a 5-field cron or an @alias fires on, each field checked against
    its range (steps too). A day and month that never meet (``31 2``) are
    refused: the schedule would never fire. Raises ValueError."""
    fields = _CRON_ALIASES.get(schedule, schedule).split(" ")
    if len(fields) != 5:
        raise ValueError(f"cron {_shown(schedule)} needs 5 fields (minute hour day month weekday)")
    values = tuple(_cron_field(text, index) for index, text in enumerate(fields))
    days, months = values[2], values[3]
    longest = max(_LONGEST_MONTH[month - 1] for month in months)
    if min(days) > longest:
        listed = ",".join(str(month) for month in sorted(months))
        which = f"month {listed} has" if len(months) == 1 else f"months {listed} have"
        raise ValueError(f"cron {_shown(schedule)} never fires: {which} at most {longest} days; "
                         f"use a day from 1 to {longest}")
    return (*values[:4], frozenset(day % 7 for day in values[4]))


def _cron_field(text: str, index: int) -> frozenset[int]:
    what, (low, high) = _CRON_FIELDS[index], _CRON_RANGES[index]
    found: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        if base == "*":
            first, last = low, high
        else:
            bounds = base.split("-")
            if len(bounds) > 2:
                raise ValueError(f"cron {what} {_shown(part)} does not parse; use N, N-M, */S, "
                                 "N-M/S or a list of them")
            numbers = [_cron_number(bound, index) for bound in bounds]
            # "N/S" runs from N to the field's end, as in cronie and APScheduler.
            first, last = numbers[0], numbers[-1] if len(numbers) == 2 or not slash else high
            if first > last:
                raise ValueError(f"cron {what} range {_shown(part)} runs backwards")
        step = 1
        if slash:
            span = last - first
            if span == 0:
                raise ValueError(f"cron {what} {_shown(part)} steps over a single value; "
                                 "drop the /step")
            if not _DIGITS.fullmatch(step_text) or len(step_text) > 4 \
                    or not 1 <= int(step_text) <= span:
                raise ValueError(f"cron {what} step in {_shown(part)} must be a whole number "
                                 f"from 1 to {span}")
            step = int(step_text)
        found.update(range(first, last + 1, step))
    return frozenset(found)


def _cron_number(text: str, index: int) -> int:
    what, (low, high) = _CRON_FIELDS[index], _CRON_RANGES[index]
    named = _CRON_NAMES[index].get(text.lower()) if text.isascii() else None
    if named is not None:
        return named
    value = int(text) if _DIGITS.fullmatch(text) and len(text) <= 4 else None
    if value is None or not low <= value <= high:
        names = {3: " or jan-dec", 4: " or sun-sat"}.get(index, "")
        raise ValueError(f"cron {what} {_shown(text)} is not a number from {low} to {high}{names}")
    return value


def parse_retention(text: str) -> dict[str, int]:
    """``last=7,daily=14`` -> ``{"last": 7, "daily": 14}``; each count from 1 to
    1,000,000. Raises ValueError."""
    policy: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or not key.isascii() or key not in RETENTION_KEYS:
            raise ValueError(f"retention item {_shown(item)}: use {'=N, '.join(RETENTION_KEYS)}=N")
        if key in policy:
            raise ValueError(f"retention names {_shown(key)} twice")
        raw = raw.strip()
        if not _DIGITS.fullmatch(raw) or len(raw) > 7 or not 1 <= int(raw) <= MAX_RETENTION:
            raise ValueError(f"retention {key}={_shown(raw)} must be a positive whole number "
                             f"(1 to {MAX_RETENTION:,})")
        policy[key] = int(raw)
    return policy


JOBS_LABEL = PREFIX + "jobs"
MAX_JOBS = 16
"""The most processes one dump (``holdfast.jobs``) runs at once."""


MODE_LABEL = PREFIX + "mode"
MODES = ("logical", "physical")
"""``holdfast.mode``: how a Postgres snapshot copies the server (its README row)."""


def mode_problem(engine: str, physical: bool, labels: Mapping[str, str]) -> str | None:
    """Why ``holdfast.mode`` cannot be honoured for ``engine`` (which has a
    physical mode if ``physical``), or None: a physical mode asked of an engine
    without one is refused, never silently ignored."""
    try:
        mode = parse_mode(labels.get(MODE_LABEL))
    except ValueError:
        return None  # reported with the label errors
    if mode == "physical" and not physical:
        return (f"holdfast.mode=physical is for Postgres only; {engine} snapshots are "
                "logical: remove the label, or set it to logical")
    return None


def parse_mode(raw: str | None) -> str:
    """``holdfast.mode``: ``logical`` (the default: SQL dumps) or ``physical``
    (the server's files). Raises :class:`ValueError` saying what to give."""
    value = (raw or "").strip().lower() or "logical"
    if value not in MODES:
        raise ValueError(f"{_shown(value)}: use logical or physical")
    return value


def parse_jobs(raw: str | None) -> int:
    """``holdfast.jobs``: how many processes a dump runs at once, 1 (the
    default: one process, the sequential format) to :data:`MAX_JOBS`.
    Raises :class:`ValueError` saying what to give."""
    if raw is None or not raw.strip():
        return 1
    value = raw.strip()
    if not _DIGITS.fullmatch(value) or len(value) > 2 or not 1 <= int(value) <= MAX_JOBS:
        raise ValueError(f"{_shown(value)}: give a whole number from 1 to {MAX_JOBS}")
    return int(value)


def parse_labels(labels: Mapping[str, str], container_name: str, *,
                 known_engines: Collection[str]) -> InstancePolicy:
    """Read a container's labels. Never raises; problems go to ``errors``.
    ``known_engines`` are the values ``holdfast.engine`` may take (the engine
    registry's names, passed in so label parsing does not depend on engines)."""
    errors: list[str] = []
    enabled = parse_bool(labels.get(PREFIX + "enable", "false")) is True
    name = instance_name(labels, container_name)
    if not NAME_PATTERN.match(name):
        errors.append(f"holdfast.name {_shown(name)}: use letters, digits and _.- (max 128)")

    engine = labels.get(PREFIX + "engine", "").strip().lower() or None
    if engine and engine not in known_engines:
        known = ", ".join(sorted(known_engines))
        errors.append(f"holdfast.engine {_shown(engine)} is unknown; use one of {known}")
        engine = None

    schedule = None
    raw_schedule = labels.get(PREFIX + "schedule", "").strip()
    if raw_schedule:
        try:
            schedule = validate_schedule(raw_schedule)
        except ValueError as exc:
            errors.append(f"holdfast.schedule: {exc}")

    retention: dict[str, int] = {}
    raw_retention = labels.get(PREFIX + "retention", "").strip()
    if raw_retention:
        try:
            retention = parse_retention(raw_retention)
        except ValueError as exc:
            errors.append(f"holdfast.retention: {exc}")

    target = labels.get(PREFIX + "target", "").strip() or "local"
    if not target.isascii() or not _TARGET_NAME.fullmatch(target.lower()):
        errors.append(f"holdfast.target {_shown(target)}: a target name is letters, digits and _")

    databases = tuple(
        part.strip() for part in labels.get(PREFIX + "databases", "").split(",") if part.strip()
    )
    stop = parse_bool(labels.get(PREFIX + "stop-during-backup", "false"))
    if stop is None:
        errors.append("holdfast.stop-during-backup: use true or false")

    verify = None
    raw_verify = labels.get(PREFIX + "verify", "").strip()
    if raw_verify:
        try:
            verify = validate_verify(raw_verify)
        except ValueError as exc:
            errors.append(f"holdfast.verify: {exc}")

    errors += _dump_option_errors(labels)
    warm = parse_bool(labels.get(PREFIX + "warm", "false"))
    if warm is None:
        errors.append("holdfast.warm: use true or false")

    encrypt = None
    raw_encrypt = labels.get(PREFIX + "encrypt", "").strip()
    if raw_encrypt:
        encrypt = parse_bool(raw_encrypt)
        if encrypt is None:
            errors.append("holdfast.encrypt: use true or false")

    return InstancePolicy(
        enabled=enabled,
        name=name,
        engine=engine,
        schedule=schedule,
        retention=retention,
        target=target.lower(),
        databases=databases,
        stop_during_backup=bool(stop),
        verify=verify,
        encrypt=encrypt,
        warm=bool(warm),
        **_alerting(labels, errors),
        errors=tuple(errors),
    )


UNSTORED_LABELS = frozenset({PREFIX + "ping"})
"""Labels whose value is a secret (a ping URL's path is its key): read from
the container each time, never copied into the catalog."""
MAX_PING_URL = 2048
_PING_URL = re.compile(r"https?://[^\s/?#@]+(?:[/?#]\S*)?\Z", re.IGNORECASE)


def _alerting(labels: Mapping[str, str], errors: list[str]) -> dict[str, Any]:
    """``holdfast.notify``, ``holdfast.ping`` and ``holdfast.stale_after``; their
    problems go to ``errors``. A ping URL is never echoed (its path is the secret)."""
    found: dict[str, Any] = {}
    raw_notify = labels.get(PREFIX + "notify", "").strip()
    if raw_notify:
        channels = tuple(sorted({part.strip().lower() for part in raw_notify.split(",")
                                 if part.strip()}))
        bad = [name for name in channels if not name.isascii() or
               not _TARGET_NAME.fullmatch(name)]
        if bad or not channels:
            errors.append(f"holdfast.notify {_shown(raw_notify)}: list channel names "
                          "(letters, digits and _), as in holdfast.notify=ops,pager")
        else:
            found["notify"] = channels
    raw_ping = labels.get(PREFIX + "ping", "").strip()
    if raw_ping:
        if len(raw_ping) > MAX_PING_URL or not _PING_URL.match(raw_ping):
            errors.append("holdfast.ping: use an http:// or https:// URL with a host, at most "
                          f"{MAX_PING_URL} characters (as https://hc-ping.com/<uuid>)")
        else:
            found["ping"] = raw_ping
    raw_stale = labels.get(PREFIX + "stale_after", "").strip()
    if raw_stale:
        try:
            found["stale_after"] = parse_duration(raw_stale)
        except ValueError as exc:
            errors.append(f"holdfast.stale_after: {exc}")
    return found


def _dump_option_errors(labels: Mapping[str, str]) -> list[str]:
    """What is wrong with the options an engine dumps with (``holdfast.jobs``,
    ``holdfast.mode``)."""
    errors = []
    for label, parse in ((JOBS_LABEL, parse_jobs), (MODE_LABEL, parse_mode)):
        try:
            parse(labels.get(label))
        except ValueError as exc:
            errors.append(f"{label} {exc}")
    return errors
