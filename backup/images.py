"""Image references: is a string one the Docker engine can name an image by?

A pure check of the grammar Docker itself parses references with
(``distribution/reference``: ``[domain[:port]/]path[:tag][@digest]``, path
components lowercase, a tag of at most 128 word characters, a name of at most
255 characters). An image id (64 hex digits, ``sha256:…``, or a short id) fits
the grammar too, as it does for ``docker run``. Checking here, before any call
to the engine, answers a typo with a 400 naming the rule instead of sending the
string into a URL path: docker-py puts it in ``/images/{ref}/json`` unquoted,
so ``../x`` would name another endpoint.
"""

from __future__ import annotations

import re

from backup.errors import InvalidInput, quoted

NAME_MAX = 255
"""Docker's ``NameTotalLengthMax``: the name part (domain and path)."""
REFERENCE_MAX = 512
"""Name, tag (128) and a sha512 digest (135) fit; longer is never looked at."""

# Each piece as in distribution/reference's regexp.go; explicit ASCII classes
# because Python's \w and \d also match other scripts' letters and digits.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")


def reference_problem(reference: str) -> str | None:
    """Why ``reference`` is not a Docker image reference, or None if it is one."""
    if not reference:
        return "it is empty"
    if len(reference) > REFERENCE_MAX:
        return f"it is longer than {REFERENCE_MAX} characters"
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        if _REFERENCE.fullmatch(reference.lower()) is not None:
            return "the repository name must be lowercase"
        return ("it is not of the form [registry/]name[:tag][@digest] "
                "(lowercase letters, digits and . _ - in the name)")
    if len(match["name"]) > NAME_MAX:
        return f"its name is longer than {NAME_MAX} characters"
    return None


def check_image_reference(reference: str) -> str:
    """``reference`` if it is a valid image reference; else :class:`InvalidInput`
    saying why, with the reference cut short (it may be anything a user sent)."""
    problem = reference_problem(reference)
    if problem is not None:
        raise InvalidInput(f"image {quoted(reference)} is not a valid image reference: {problem}")
    return reference
