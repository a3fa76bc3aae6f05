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

PREFIX = "holdfast."
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
RETENTION_KEYS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
SCHEDULE_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``6h``, ``1d`` -> seconds (positive). Raises ValueError."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 6h or 1d")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be longer than zero")
    return seconds


def validate_schedule(text: str) -> str:
    """Accept 5-field cron, the @aliases and ``@every <duration>``; return it normalised."""
    value = " ".join(text.split())
    if value in SCHEDULE_ALIASES:
        return value
    if value.startswith("@every"):
        parse_duration(value[len("@every"):].strip())
        return value
    if value.startswith("@"):
        raise ValueError(f"unknown schedule {value!r}; use @hourly, @daily, @weekly, @monthly "
                         "or @every <duration>")
    fields = value.split(" ")
    if len(fields) != 5:
        raise ValueError(f"cron {value!r} needs 5 fields (minute hour day month weekday)")
    for text_field, (low, high), names in zip(fields, _CRON_RANGES, _CRON_NAMES, strict=True):
        _validate_cron_field(text_field, low, high, names)
    return value


def _validate_cron_field(text: str, low: int, high: int, names: Mapping[str, int]) -> None:
    for part in text.split(","):
        base, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"cron step {part!r} is not a positive number")
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2:
            raise ValueError(f"cron range {part!r} does not parse")
        values = []
        for bound in bounds:
            value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
            if value is None or not low <= value <= high:
                raise ValueError(f"cron value {bound!r} is outside {low}-{high}")
            values.append(value)
        if len(values) == 2 and values[0] > values[1]:
            raise ValueError(f"cron range {part!r} runs backwards")


def parse_retention(text: str) -> dict[str, int]:
    """``last=7,daily=14`` -> ``{"last": 7, "daily": 14}``. Raises ValueError."""
    policy: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in RETENTION_KEYS:
            raise ValueError(f"retention item {item!r}: use {'=N, '.join(RETENTION_KEYS)}=N")
        if key in policy:
            raise ValueError(f"retention names {key!r} twice")
        raw = raw.strip()
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(f"retention {key}={raw!r} must be a positive whole number")
        policy[key] = int(raw)
    return policy


def parse_labels(labels: Mapping[str, str], container_name: str, *,
                 known_engines: Collection[str]) -> InstancePolicy:
    """Read a container's labels. Never raises; problems go to ``errors``.
    ``known_engines`` are the values ``holdfast.engine`` may take (the engine
    registry's names, passed in so label parsing does not depend on engines)."""
    errors: list[str] = []
    enabled = parse_bool(labels.get(PREFIX + "enable", "false")) is True
    name = instance_name(labels, container_name)
    if not NAME_PATTERN.match(name):
        errors.append(f"holdfast.name {name!r}: use letters, digits and _.- (max 128)")

    engine = labels.get(PREFIX + "engine", "").strip().lower() or None
    if engine and engine not in known_engines:
        known = ", ".join(sorted(known_engines))
        errors.append(f"holdfast.engine {engine!r} is unknown; use one of {known}")
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
    if not re.match(r"^[a-z0-9_]+$", target.lower()):
        errors.append(f"holdfast.target {target!r}: a target name is letters, digits and _")

    databases = tuple(
        part.strip() for part in labels.get(PREFIX + "databases", "").split(",") if part.strip()
    )
    stop = parse_bool(labels.get(PREFIX + "stop-during-backup", "false"))
    if stop is None:
        errors.append("holdfast.stop-during-backup: use true or false")

    return InstancePolicy(
        enabled=enabled,
        name=name,
        engine=engine,
        schedule=schedule,
        retention=retention,
        target=target.lower(),
        databases=databases,
        stop_during_backup=bool(stop),
        errors=tuple(errors),
    )
