"""Secrets on a container's command line (``redis-server --requirepass X``)
are taken out before a manifest is stored, and put back on restore."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from backup.types import SECRET_FLAGS, fill_command, redact_command

ARGS = st.lists(st.one_of(
    st.sampled_from(["redis-server", "--appendonly", "yes", "--port", "6379"]),
    st.sampled_from(sorted(SECRET_FLAGS)),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
), max_size=10)


def test_requirepass_is_redacted_and_restored() -> None:
    command = ("redis-server", "--appendonly", "yes", "--requirepass", "hunter2")
    public, values = redact_command(command)
    assert public == ("redis-server", "--appendonly", "yes", "--requirepass",
                      "{{secret:REDIS_PASSWORD}}")
    assert values == {"REDIS_PASSWORD": "hunter2"}
    assert fill_command(public, values) == command
    assert fill_command(public, {"REDIS_PASSWORD": "other"})[-1] == "other"


def test_equals_form_and_masterauth() -> None:
    public, values = redact_command(["redis-server", "--requirepass=a", "--masterauth", "b"])
    assert public == ("redis-server", "--requirepass={{secret:REDIS_PASSWORD}}",
                      "--masterauth", "{{secret:REDIS_MASTERAUTH}}")
    assert values == {"REDIS_PASSWORD": "a", "REDIS_MASTERAUTH": "b"}


@given(ARGS)
def test_round_trip_and_no_secret_value_left(command: list[str]) -> None:
    public, values = redact_command(command)
    assert fill_command(public, values) == tuple(command) or _last_wins(command)
    for flag in SECRET_FLAGS:
        for index, arg in enumerate(public[:-1]):
            if arg == flag:
                assert public[index + 1].startswith("{{secret:")


def _last_wins(command: list[str]) -> bool:
    """A flag given twice keeps one value (the last), like the server does."""
    flags = [arg for arg in command if arg.partition("=")[0] in SECRET_FLAGS]
    return len(flags) > 1
