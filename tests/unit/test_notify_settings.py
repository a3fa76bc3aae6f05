"""``HOLDFAST_NOTIFY_<NAME>`` channels: parsed, bounded, and never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from backup.alerts import DEFAULT_EVENTS, EventName
from backup.errors import InvalidInput
from service.settings import MAX_CHANNELS, Settings

HOOK = "https://hooks.example.com/services/T0K3N/abc"


def _load(tmp_path: Path, **env: str) -> Settings:
    return Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path), **env})


def test_a_webhook_and_an_apprise_channel_with_their_secret_and_events(tmp_path: Path) -> None:
    settings = _load(tmp_path, HOLDFAST_NOTIFY_OPS=HOOK, HOLDFAST_NOTIFY_OPS_SECRET="k3y",
                     HOLDFAST_NOTIFY_CHAT="ntfy://127.0.0.1:8080/backups",
                     HOLDFAST_NOTIFY_CHAT_EVENTS="backup.succeeded,backup.failed",
                     HOLDFAST_NOTIFY_RETRY_FOR="30")
    ops, chat = settings.notify_channels["ops"], settings.notify_channels["chat"]
    assert sorted(settings.notify_channels) == ["chat", "ops"]  # RETRY_FOR is a setting
    assert settings.notify_retry_for == 30
    assert ops.kind == "webhook" and ops.events == DEFAULT_EVENTS
    assert ops.secret is not None and ops.secret.get_secret_value() == "k3y"
    assert ops.described() == "https://hooks.example.com"
    assert chat.kind == "apprise" and chat.described() == "apprise ntfy://"
    assert chat.events == {EventName.BACKUP_SUCCEEDED, EventName.BACKUP_FAILED}
    assert "T0K3N" not in repr(settings) and "k3y" not in repr(settings)


def test_a_channel_named_like_a_setting_field_is_still_a_channel(tmp_path: Path) -> None:
    settings = _load(tmp_path, HOLDFAST_NOTIFY_CHANNELS=HOOK)
    assert list(settings.notify_channels) == ["channels"]


@pytest.mark.parametrize(("env", "message"), [
    ({"HOLDFAST_NOTIFY_OPS_SECRET": "k"}, "HOLDFAST_NOTIFY_OPS_SECRET is set but "
                                          "HOLDFAST_NOTIFY_OPS"),
    ({"HOLDFAST_NOTIFY_OPS": "not a url T0K3N"}, "HOLDFAST_NOTIFY_OPS is not a notification URL"),
    ({"HOLDFAST_NOTIFY_OPS": "https:///T0K3N"}, "needs a host"),
    ({"HOLDFAST_NOTIFY_OPS": "https://h/" + "T0K3N" * 500}, "at most 2048"),
    ({"HOLDFAST_NOTIFY_OPS": HOOK, "HOLDFAST_NOTIFY_OPS_EVENTS": "backup.maybe"},
     "HOLDFAST_NOTIFY_OPS_EVENTS: unknown event"),
    ({"HOLDFAST_NOTIFY_OP-S": HOOK}, "channel names are letters"),
    ({f"HOLDFAST_NOTIFY_C{i}": HOOK for i in range(MAX_CHANNELS + 1)}, "the most is 32"),
])
def test_bad_channel_settings_say_which_variable_and_never_echo_the_url(
        tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        _load(tmp_path, **env)
    assert "T0K3N" not in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_the_retry_budget_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="notify_retry_for"):
        _load(tmp_path, HOLDFAST_NOTIFY_RETRY_FOR="90000")
