"""``holdfast serve`` checks its key settings before it opens anything: a bad
recipient or identity file refuses the start in one line naming the setting,
and good ones are logged as fingerprints, never as keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup.encryption import fingerprint, new_identity
from backup.errors import InvalidIdentity, InvalidRecipients
from service.entrypoints.daemon import main
from tests.fakes.services import FakeWorld
from tests.usecases.entrypoints.test_serve_guard import daemon_parts, free_port

__all__ = ["daemon_parts"]  # the fixture, used by name


def test_bad_recipients_refuse_the_start_before_anything_is_opened(
        world: FakeWorld, daemon_parts: list[tuple[str, int]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[object] = []
    monkeypatch.setattr(main, "bootstrap", lambda settings: opened.append(settings))
    settings = world.services.settings.model_copy(update={"age_recipients": "age1bogus"})
    with pytest.raises(InvalidRecipients, match=r"^HOLDFAST_AGE_RECIPIENTS: "):
        main.run_daemon(settings, port=free_port())
    assert opened == [] and daemon_parts == []


def test_an_unreadable_identity_file_refuses_the_start(
        world: FakeWorld, daemon_parts: list[tuple[str, int]], tmp_path: Path) -> None:
    settings = world.services.settings.model_copy(
        update={"identity_file": tmp_path / "missing.txt"})
    with pytest.raises(InvalidIdentity, match=r"missing\.txt"):
        main.run_daemon(settings, port=free_port())
    assert daemon_parts == []


def test_good_keys_are_logged_as_fingerprints_only(
        world: FakeWorld, daemon_parts: list[tuple[str, int]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    text, recipient = new_identity()
    identity = tmp_path / "id.txt"
    identity.write_text(text)
    settings = world.services.settings.model_copy(
        update={"age_recipients": recipient, "identity_file": identity, "log_level": "INFO"})
    main.run_daemon(settings, port=free_port())
    logged = capsys.readouterr().err
    assert daemon_parts and f"target local encrypts to {fingerprint(recipient)}" in logged
    assert recipient not in logged and "AGE-SECRET-KEY" not in logged
