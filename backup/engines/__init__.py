"""The registry of database engines, keyed by the ``holdfast.engine`` label value.

Explicit, lazily imported, and refusing duplicates, like the storage registry.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import cast

from backup.engines.base import Dump, Engine
from backup.errors import UnsupportedEngine

_KNOWN: dict[str, str] = {
    "postgres": "backup.engines.postgres:PostgresEngine",
    "redis": "backup.engines.redis:RedisEngine",
    "mariadb": "backup.engines.mariadb:MariaDBEngine",
    "mysql": "backup.engines.mariadb:MySQLEngine",
    "volume": "backup.engines.volume:VolumeEngine",
}
KNOWN_ENGINES = MappingProxyType(_KNOWN)
# Data formats read by another class than their engine's own: a physical
# Postgres snapshot is restored into volumes before its server starts.
_FORMAT_READERS: dict[tuple[str, str], str] = {
    ("postgres", "holdfast-postgres-physical-v1"):
        "backup.engines.pgphysical:PostgresPhysicalEngine",
}
# Engines with a physical mode (holdfast.mode=physical); the others refuse it.
_PHYSICAL: set[str] = {"postgres"}
# Engines named in the contract whose implementation has not landed yet; they
# parse as labels but a backup of them fails with a clear message.
PLANNED_ENGINES: frozenset[str] = frozenset()


def engine_names() -> frozenset[str]:
    """Every value ``holdfast.engine`` may take: registered and planned engines."""
    return frozenset(_KNOWN) | PLANNED_ENGINES


def register_engine(name: str, dotted_path: str, *, clobber: bool = False,
                    physical: bool = False) -> None:
    """Make engine ``name`` known; ``physical``: it reads ``holdfast.mode=physical``."""
    if name in _KNOWN and not clobber and _KNOWN[name] != dotted_path:
        raise ValueError(f"engine {name!r} is already registered to {_KNOWN[name]}")
    _KNOWN[name] = dotted_path
    if physical:
        _PHYSICAL.add(name)


def has_physical_mode(name: str) -> bool:
    """Whether engine ``name`` takes physical snapshots (``holdfast.mode=physical``)."""
    return name in _PHYSICAL


def get_engine(name: str, data_format: str | None = None) -> Engine:
    """The engine ``name``; with ``data_format``, the one that reads that
    format (a snapshot's manifest names both)."""
    dotted = _FORMAT_READERS.get((name, data_format or "")) or _KNOWN.get(name)
    if dotted is None:
        if name in PLANNED_ENGINES:
            raise UnsupportedEngine(
                f"engine {name!r} is not supported by this Holdfast version yet; "
                f"supported: {', '.join(sorted(_KNOWN))}"
            )
        raise UnsupportedEngine(
            f"unknown engine {name!r}; set holdfast.engine to one of "
            f"{', '.join(sorted(_KNOWN | dict.fromkeys(PLANNED_ENGINES, '')))}"
        )
    module_name, class_name = dotted.split(":")
    return cast(Engine, getattr(importlib.import_module(module_name), class_name)())


__all__ = ["KNOWN_ENGINES", "PLANNED_ENGINES", "Dump", "Engine", "engine_names", "get_engine",
           "has_physical_mode", "register_engine"]
