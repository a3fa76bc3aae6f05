"""What a remote call's failure becomes: the daemon's error class again, or a client-side one.

The daemon answers every failure with a one-line ``error`` and the error's class
(RFC 9457 problem JSON: ``kind``, with ``type`` its URI; before it, ``type``):
:func:`error_from_answer` turns it back into
the same :class:`~backup.errors.HoldfastError` subclass, so the CLI's exit code
is the one local mode gives. The classes come from the caller (the CLI derives
them from the error tree and its error table); this module keeps no list of its
own. It imports no third-party library, so the error table can name
:class:`ServerUnreachable` without loading httpx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backup import errors

ErrorClasses = Mapping[str, type[errors.HoldfastError]]
"""Error classes by name (the ``type`` the daemon sends)."""
StatusClasses = Mapping[int, type[errors.HoldfastError]]
"""For a ``type`` this client does not know, the class of each HTTP status."""


class ServerUnreachable(errors.HoldfastError):
    """The daemon named by ``--server`` did not answer: refused, timed out, or
    the connection broke (exit 5, like any unreachable service)."""

    retryable = True


class UnexpectedAnswer(errors.HoldfastError):
    """The server answered something that is not Holdfast's API (not JSON, or not
    the shape of the route): a wrong URL, a proxy's page (exit 1)."""


def type_name(kind: object) -> str:
    """The class name in a ``type``: ``NotFound`` as sent, or the last segment
    of a problem-type URI (``https://…/problems/NotFound``, ``…/not-found``)."""
    text = str(kind or "").rstrip("/")
    last = text.rsplit("/", 1)[-1].rsplit("#", 1)[-1]
    if "-" in last:
        last = "".join(part.capitalize() for part in last.split("-"))
    return last


def rebuilt(kind: type[errors.HoldfastError], message: str) -> errors.HoldfastError:
    """An instance of ``kind`` whose text is ``message``, whatever its constructor
    takes (some take more than a message: what the daemon knew is in the text)."""
    try:
        made = kind(message)
    except TypeError:
        made = kind.__new__(kind)
        Exception.__init__(made, message)
    try:
        same = str(made) == message
    except AttributeError:  # a __str__ reading attributes the daemon's instance had
        same = False
    if not same:
        made = kind.__new__(kind)
        Exception.__init__(made, message)
        if str(made) != message:
            return errors.HoldfastError(message)
    return made


def error_of(kind: object, message: str, classes: ErrorClasses,
             fallback: type[errors.HoldfastError]) -> errors.HoldfastError:
    """The error named ``kind`` (``fallback`` if this client does not know it)."""
    return rebuilt(classes.get(type_name(kind), fallback), message)


def error_from_answer(status: int, body: Any, classes: ErrorClasses,
                      by_status: StatusClasses, server: str) -> errors.HoldfastError:
    """The error a failed answer (``status``, its decoded JSON ``body``) stands for."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), str):
        return UnexpectedAnswer(f"{server} answered HTTP {status} without Holdfast's error "
                                "body: is --server the daemon's address?")
    message = " ".join(str(body["error"]).split())
    fallback = by_status.get(status, errors.HoldfastError)
    # Problem JSON names the class in ``kind`` (``type`` is its URI); before, in ``type``.
    found = error_of(body.get("kind") or body.get("type"), message, classes, fallback)
    if status == 401:
        return rebuilt(type(found), f"{server} refused the token ({message}): give a valid "
                       "one with --token-file FILE, HOLDFAST_TOKEN or --token")
    if status == 403:
        return rebuilt(type(found), f"{message}; ask an admin for a token with that scope "
                       "(holdfast tokens create --scope …)")
    return found
