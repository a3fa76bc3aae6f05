"""The README's Notifications section says what the code does: its payload
example has exactly the webhook's keys, its events table names every event,
and its signature check, run as written, accepts what Holdfast signs and
refuses anything else."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from backup.alerts import Event, EventName, sign

README = Path(__file__).resolve().parents[2] / "README.md"
_SECTION = re.compile(r"^## Notifications\n(.*?)^## ", re.S | re.M)


def section() -> str:
    found = _SECTION.search(README.read_text())
    assert found, "README.md has no '## Notifications' section"
    return found.group(1)


def block(language: str) -> str:
    found = re.search(rf"^```{language}\n(.*?)^```", section(), re.S | re.M)
    assert found, f"no {language} block in the Notifications section"
    return found.group(1)


def test_the_payload_example_has_the_webhooks_keys() -> None:
    example = json.loads(block("json"))
    event = Event(EventName.BACKUP_FAILED, "prod-db", "r", datetime(2026, 12, 4, tzinfo=UTC),
                  instance="prod-db")
    assert set(example) == set(event.payload("https://h.example"))
    assert example["event"] in set(EventName)


def test_the_events_table_names_every_event() -> None:
    listed = set(re.findall(r"^\| `([a-z.]+)` \|", section(), re.M))
    assert listed == {str(name) for name in EventName}


def test_the_signature_check_accepts_holdfasts_signature_only() -> None:
    namespace: dict[str, object] = {}
    exec(block("python"), namespace)  # the README's own example, as a reader would run it
    check = namespace["from_holdfast"]
    assert callable(check)
    body = b'{"event":"recovered","instance":"prod-db"}'
    assert check(body, sign(body, "s3cret"), "s3cret") is True
    assert check(body + b" ", sign(body, "s3cret"), "s3cret") is False
    assert check(body, sign(body, "other"), "s3cret") is False
