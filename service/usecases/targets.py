"""Use cases for storage targets: prove each one can store, return and delete an object."""

from __future__ import annotations

import logging
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from backup.errors import (
    HoldfastError,
    StorageError,
)
from backup.streams import read_all
from service.bootstrap import Services

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetCheck:
    name: str
    url: str
    ok: bool
    seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ok": self.ok,
                "seconds": round(self.seconds, 3), "error": self.error}


PROBE_PREFIX = "_holdfast-probe"
_PROBE_BYTES = 256 * 1024


def check_target(svc: Services, name: str) -> TargetCheck:
    """Write a probe object, read it back, compare, delete it."""
    url = svc.settings.targets.get(name, "")
    started = time.monotonic()
    key = f"{PROBE_PREFIX}/{socket.gethostname()}-{secrets.token_hex(4)}"
    payload = secrets.token_bytes(_PROBE_BYTES)
    try:
        storage = svc.target(name)
        storage.put(key, [payload[: _PROBE_BYTES // 2], payload[_PROBE_BYTES // 2:]])
        try:
            with storage.open(key) as chunks:
                echoed = read_all(chunks, _PROBE_BYTES)
            if echoed != payload:
                raise StorageError(f"target {name!r}: the probe read back differs from what "
                                   "was written")
        finally:
            storage.delete(key)
    except HoldfastError as exc:
        return TargetCheck(name, url, False, time.monotonic() - started, str(exc))
    return TargetCheck(name, url, True, time.monotonic() - started)


def check_targets(svc: Services, names: Iterable[str] | None = None) -> list[TargetCheck]:
    wanted = sorted(names) if names else sorted(svc.settings.targets)
    return [check_target(svc, name) for name in wanted]
