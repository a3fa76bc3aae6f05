"""Image references: Docker's grammar as a full match, bounded, and its refusal is one
short line (whatever was sent)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from backup.errors import InvalidInput
from backup.images import REFERENCE_MAX, check_image_reference, reference_problem

HEX64 = "0123456789abcdef" * 4

VALID = [
    "postgres", "postgres:15", "holdfast-test/postgres:15", "library/redis:7-alpine",
    "localhost:5000/team/app:1.2.3", "registry.example.com/a/b/c:latest",
    "Registry.Example.com:443/app", "[::1]:5000/app:1", "a__b", "a---b", "a.b_c-d",
    f"postgres@sha256:{HEX64}", f"postgres:15@sha256:{HEX64}", HEX64, f"sha256:{HEX64}",
    "abc123", "app:" + "T" * 128, "a/" * 100 + "b",
]

INVALID = [
    ("", "empty"), ("Nope:1", "lowercase"), ("UPPER", "lowercase"),
    ("a b", "form"), ("../etc", "form"), ("a/../b", "form"), ("a:b:c", "form"),
    ("busybox@sha256:abc", "form"), ("postgres:15\n", "form"), ("postgres\n", "form"),
    ("postgres:\u0661\u0665", "form"), ("p\u00f6stgres", "form"), ("a_", "form"),
    ("_a", "form"), ("a//b", "form"), ("a:", "form"), ("-a", "form"),
    ("app:" + "t" * 129, "form"), ("a\x00b", "form"), ("a?b", "form"), ("a#b", "form"),
    ("%2e%2e", "form"), ("http://x/y", "form"), ("a" * 256, "name is longer"),
    ("a" * (REFERENCE_MAX + 1), "longer than"),
]


@pytest.mark.parametrize("reference", VALID)
def test_references_docker_accepts_pass(reference: str) -> None:
    assert reference_problem(reference) is None
    assert check_image_reference(reference) == reference


@pytest.mark.parametrize(("reference", "why"), INVALID)
def test_references_docker_refuses_are_refused_saying_why(reference: str, why: str) -> None:
    problem = reference_problem(reference)
    assert problem is not None and why in problem
    with pytest.raises(InvalidInput, match="is not a valid image reference"):
        check_image_reference(reference)


_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
_alnum = st.text(_LOWER, min_size=1, max_size=8)
_component = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest), _alnum,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--"]), _alnum), max_size=3))
_domain = st.builds(lambda parts, port: ".".join(parts) + (f":{port}" if port else ""),
                    st.lists(_alnum, min_size=1, max_size=3),
                    st.none() | st.integers(1, 65535))
_tag = st.builds(lambda first, rest: first + rest,
                 st.sampled_from("aZ9_"), st.text("aZ9_.-", max_size=20))
references = st.builds(
    lambda domain, path, tag, digest: (f"{domain}/" if domain else "") + "/".join(path)
    + (f":{tag}" if tag else "") + (f"@sha256:{digest}" if digest else ""),
    st.none() | _domain, st.lists(_component, min_size=1, max_size=4),
    st.none() | _tag, st.none() | st.text("0123456789abcdef", min_size=64, max_size=64))
ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@[]+")


@given(references)
def test_every_reference_of_the_grammar_passes(reference: str) -> None:
    assert reference_problem(reference) is None


@given(references, st.characters().filter(lambda c: c not in ALLOWED), st.data())
def test_a_character_docker_never_allows_anywhere_is_refused(
        reference: str, bad: str, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(reference)))
    assert reference_problem(reference[:at] + bad + reference[at:]) is not None


@given(references, st.sampled_from(["\n", "\r\n", " ", "\t"]))
def test_trailing_whitespace_is_refused(reference: str, tail: str) -> None:
    assert reference_problem(reference + tail) is not None


@given(st.text(max_size=2000))
@example("0" * 21 + "\x1f" * 8 + "\U0002ebe1" * 60)  # quotes to ~10 characters each
def test_the_refusal_is_one_short_line_for_any_input(text: str) -> None:
    try:
        check_image_reference(text)
    except InvalidInput as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 300
    else:
        assert reference_problem(text) is None
