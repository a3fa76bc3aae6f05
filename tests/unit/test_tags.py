"""Snapshot tags, pure: the key grammar and value bounds, the CLI's ``key=value``
and the API's ``key:value`` (split at the first separator), and matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import InvalidInput
from backup.tags import (
    TAG_KEY,
    TAGS_MAX,
    check_tags,
    has_tags,
    parse_tag_args,
    tags_text,
)

keys = st.from_regex(TAG_KEY, fullmatch=True)
values = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp", "Co", "Cn")),
                 max_size=256).filter(str.isprintable)


@given(st.dictionaries(keys, values, max_size=TAGS_MAX))
def test_valid_tags_pass_unchanged_and_sorted(tags: dict[str, str]) -> None:
    checked = check_tags(tags)
    assert checked == tags and list(checked) == sorted(tags)


@given(keys, values)
def test_the_cli_form_round_trips_whatever_the_value_holds(key: str, value: str) -> None:
    assert parse_tag_args([f"{key}={value}"]) == {key: value}
    assert parse_tag_args([f"{key}:{value}"], ":") == {key: value}


@given(st.text(max_size=80).filter(lambda k: TAG_KEY.fullmatch(k) is None))
def test_any_other_key_is_refused_with_one_line(key: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_tags({key: "v"})
    assert "\n" not in str(caught.value) and "tag key" in str(caught.value)


@pytest.mark.parametrize("key", ["a" * 65, "-lead", ".x", "has space", "k=v", "k:v", "é"])
def test_keys_outside_the_grammar(key: str) -> None:
    with pytest.raises(InvalidInput, match="tag key"):
        check_tags({key: "v"})


@pytest.mark.parametrize("value", ["x" * 257, "line\nbreak", "tab\there", "\x1b[31m"])
def test_values_too_long_or_not_printable(value: str) -> None:
    with pytest.raises(InvalidInput, match="at most 256 printable"):
        check_tags({"k": value})


def test_bounds_are_inclusive() -> None:
    assert check_tags({"a" * 64: "x" * 256, "e": ""}) == {"a" * 64: "x" * 256, "e": ""}
    assert len(check_tags({f"k{i}": "v" for i in range(TAGS_MAX)})) == TAGS_MAX
    with pytest.raises(InvalidInput, match="at most 32"):
        check_tags({f"k{i}": "v" for i in range(TAGS_MAX + 1)})
    with pytest.raises(InvalidInput, match="at most 32"):
        parse_tag_args([f"k{i}=v" for i in range(TAGS_MAX + 1)])


def test_non_string_values_are_refused() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        check_tags({"k": 1})  # type: ignore[dict-item]


def test_split_at_the_first_separator() -> None:
    assert parse_tag_args(["url=a=b", "note=x:y"]) == {"url": "a=b", "note": "x:y"}
    assert parse_tag_args(["release:v1:rc2"], ":") == {"release": "v1:rc2"}
    assert parse_tag_args(["empty="]) == {"empty": ""}


@pytest.mark.parametrize("item", ["novalue", "", "=v"])
def test_malformed_items_say_what_to_write(item: str) -> None:
    with pytest.raises(InvalidInput, match=r"KEY=VALUE|tag key"):
        parse_tag_args([item])


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match="given twice"):
        parse_tag_args(["k=1", "k=2"])


@given(st.dictionaries(keys, values, max_size=5), st.dictionaries(keys, values, max_size=3))
def test_matching_needs_every_wanted_tag(carried: dict[str, str],
                                         wanted: dict[str, str]) -> None:
    expected = all(key in carried and carried[key] == value for key, value in wanted.items())
    assert has_tags(carried, wanted) is expected
    assert has_tags(carried, {})
    assert has_tags({**carried, **wanted}, wanted)


def test_tags_text() -> None:
    assert tags_text({}) == "-"
    assert tags_text({"b": "2", "a": "1"}) == "a=1,b=2"
