"""Snapshot tags: user labels such as ``release=v1.4.2`` that name a checkpoint.

Pure parsing and bounds, shared by the API, the CLI and the use cases. A tag
key is 1 to 64 characters like a label key (a letter or digit, then letters,
digits and ``._/-``), so it never holds ``=`` (the CLI's ``key=value``) or
``:`` (the API's ``key:value`` filter, split at the first ``:``); a value is 0
to 256 printable characters and may hold both. At most 32 tags per snapshot.
Every refusal is one :class:`~backup.errors.InvalidInput` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from backup.errors import InvalidInput
from backup.names import shown

TAGS_MAX = 32
TAG_KEY_MAX = 64
TAG_VALUE_MAX = 256
TAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")
_KEY_RULE = "1-64 letters, digits and ._/- starting with a letter or digit"


def check_tag(key: object, value: object) -> tuple[str, str]:
    """One tag checked: ``(key, value)`` or :class:`InvalidInput`."""
    if not isinstance(key, str) or not TAG_KEY.fullmatch(key):
        raise InvalidInput(f"tag key {shown(str(key))} is not valid: use {_KEY_RULE}")
    if not isinstance(value, str):
        raise InvalidInput(f"tag {key}: the value must be a string")
    if len(value) > TAG_VALUE_MAX or not value.isprintable():
        raise InvalidInput(f"tag {key}: the value must be at most {TAG_VALUE_MAX} printable "
                           "characters")
    return key, value


def check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    """A snapshot's tags checked (None is none), keys sorted; :class:`InvalidInput`
    for a bad key or value or more than :data:`TAGS_MAX` tags."""
    if not tags:
        return {}
    if len(tags) > TAGS_MAX:
        raise InvalidInput(f"{len(tags)} tags given; a snapshot carries at most {TAGS_MAX}")
    return dict(sorted(check_tag(key, value) for key, value in tags.items()))


def parse_tag_args(items: Iterable[str] | None, separator: str = "=") -> dict[str, str]:
    """``["release=v1.4.2", ...]`` (the CLI's ``--tag``; the API's ``?tag=`` with
    ``separator=":"``) -> tags, each split at the first ``separator``; a key
    given twice is refused."""
    tags: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition(separator)
        if not sep:
            raise InvalidInput(f"tag {shown(item)}: use KEY{separator}VALUE, like "
                               f"release{separator}v1.4.2")
        key, value = check_tag(key, value)
        if key in tags:
            raise InvalidInput(f"tag {key} is given twice")
        tags[key] = value
    if len(tags) > TAGS_MAX:
        raise InvalidInput(f"{len(tags)} tags given; a snapshot carries at most {TAGS_MAX}")
    return tags


def has_tags(carried: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Whether a snapshot carrying ``carried`` matches every tag in ``wanted``."""
    return all(carried.get(key) == value for key, value in wanted.items())


def tags_text(tags: Mapping[str, str]) -> str:
    """``a=1,b=2`` for a table cell; ``-`` for none."""
    return ",".join(f"{key}={value}" for key, value in sorted(tags.items())) or "-"
