"""Key counts per database read from a Redis RDB stream as it passes.

An RDB is a ``REDIS0011``-style header, then records: auxiliary fields,
``SELECTDB`` and ``RESIZEDB`` before each database's keys, and each key as
an optional expiry (and LRU/LFU hint), a value type, the key and its value,
up to ``EOF`` and a checksum. A database's RESIZEDB size is written only at
its start, so reaching the next database means reading past every value:
this reader knows how every value type of Redis 7 is laid out (plain and
listpack/ziplist/intset encodings, quicklists, streams with their consumer
groups, module values through their self-describing opcodes) and passes the
value bytes through without holding them. A type it does not know (a newer
Redis) raises, and the engine then falls back to ``INFO keyspace``.

It counts the keys without an expiry: those can only be missing from a
restored copy if the restore lost them, while a key with a TTL may expire
between the backup and the restore and its absence proves nothing.
"""

from __future__ import annotations

from collections.abc import Generator

from backup.figures import Need, Pass, Reader

_EOF, _SELECTDB, _RESIZEDB, _AUX = 0xFF, 0xFE, 0xFB, 0xFA
_EXPIRE_S, _EXPIRE_MS, _FREQ, _IDLE = 0xFD, 0xFC, 0xF9, 0xF8
_MODULE_AUX, _FUNCTION, _SLOT_INFO = 0xF7, 0xF6, 0xF4
_ONE_STRING = {0, 9, 10, 11, 12, 13, 16, 17, 20}  # a string, or one encoded blob
_STRINGS, _PAIRS = {1, 2, 14}, {4}
_ZSET, _ZSET2, _MODULE2, _QUICKLIST2 = 3, 5, 7, 18
_STREAMS = {15: 1, 19: 2, 21: 3}

Step = Generator[Need | Pass, bytes, int]


def _length() -> Generator[Need | Pass, bytes, tuple[int, bool]]:
    """Redis's length encoding: (value, True) for a special string encoding."""
    first = (yield Need(1))[0]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, False
    if kind == 1:
        return ((first & 0x3F) << 8) | (yield Need(1))[0], False
    if kind == 3:
        return first & 0x3F, True
    if first == 0x80:
        return int.from_bytes((yield Need(4)), "big"), False
    if first == 0x81:
        return int.from_bytes((yield Need(8)), "big"), False
    raise ValueError(f"RDB has an unknown length encoding {first:#x}")


def _number() -> Step:
    value, special = yield from _length()
    if special:
        raise ValueError("RDB has a string encoding where a length belongs")
    return value


def _string(keep: bool = False) -> Generator[Need | Pass, bytes, bytes]:
    """Read (``keep``) or pass over one string in any of its encodings."""
    value, special = yield from _length()
    if special:
        if value in (0, 1, 2):  # an integer of 1, 2 or 4 bytes
            return (yield Need(1 << value))
        if value != 3:
            raise ValueError(f"RDB has an unknown string encoding {value}")
        size = yield from _number()  # LZF: compressed size, then the plain size
        yield from _number()
    else:
        size = value
    if keep:
        return (yield Need(size))
    yield Pass(size, _ignore)
    return b""


def rdb_reader(keys: dict[str, int]) -> Reader:
    """A :data:`~backup.figures.Reader` counting, per ``dbN``, the keys of an
    RDB stream that have no expiry (every selected database appears, also
    with 0)."""
    header = yield Need(9)
    if header[:5] != b"REDIS":
        raise ValueError("not an RDB stream")
    database, expiring = "db0", False
    while True:
        opcode = (yield Need(1))[0]
        if opcode == _EOF:
            yield Need(8)  # the checksum
            return
        if opcode == _SELECTDB:
            database = f"db{(yield from _number())}"
            keys.setdefault(database, 0)
        elif opcode in (_RESIZEDB, _SLOT_INFO):
            for _ in range(2 if opcode == _RESIZEDB else 3):
                yield from _number()
        elif opcode in (_AUX, _FUNCTION):
            for _ in range(2 if opcode == _AUX else 1):
                yield from _string()
        elif opcode in (_EXPIRE_S, _EXPIRE_MS):
            yield Need(4 if opcode == _EXPIRE_S else 8)
            expiring = True
        elif opcode == _FREQ:
            yield Need(1)
        elif opcode == _IDLE:
            yield from _number()
        elif opcode == _MODULE_AUX:
            for _ in range(3):  # module id, when-opcode, when
                yield from _number()
            yield from _module_values()
        else:
            yield from _string()  # the key
            yield from _value(opcode)
            if not expiring:
                keys[database] = keys.get(database, 0) + 1
            expiring = False


def _value(kind: int) -> Generator[Need | Pass, bytes, None]:
    if kind in _ONE_STRING:
        yield from _string()
    elif kind in _STRINGS or kind in _PAIRS:
        for _ in range((yield from _number()) * (2 if kind in _PAIRS else 1)):
            yield from _string()
    elif kind in (_ZSET, _ZSET2):
        for _ in range((yield from _number())):
            yield from _string()
            if kind == _ZSET2:
                yield Need(8)
            else:
                size = (yield Need(1))[0]
                yield Need(size if size < 253 else 0)  # 253-255: nan, +inf, -inf
    elif kind == _QUICKLIST2:
        for _ in range((yield from _number())):
            yield from _number()  # the container kind
            yield from _string()
    elif kind == _MODULE2:
        yield from _number()  # module id
        yield from _module_values()
    elif kind in _STREAMS:
        yield from _stream(_STREAMS[kind])
    else:
        raise ValueError(f"RDB has a value type {kind} this Holdfast does not read")


def _module_values() -> Generator[Need | Pass, bytes, None]:
    """A module value in the self-describing form: opcodes up to EOF (0)."""
    while (opcode := (yield from _number())) != 0:
        if opcode in (1, 2):
            yield from _number()
        elif opcode in (3, 4):
            yield Need(4 if opcode == 3 else 8)
        elif opcode == 5:
            yield from _string()
        else:
            raise ValueError(f"RDB module value has an unknown opcode {opcode}")


def _stream(version: int) -> Generator[Need | Pass, bytes, None]:
    """Stream listpacks, then its counters, then consumer groups with their
    pending entries and consumers (the fields each RDB version added)."""
    for _ in range((yield from _number())):
        yield from _string()
        yield from _string()
    for _ in range(3 + (5 if version >= 2 else 0)):  # length, ids, counters
        yield from _number()
    for _ in range((yield from _number())):  # consumer groups
        yield from _string()
        for _ in range(3 if version >= 2 else 2):  # last id, entries read
            yield from _number()
        for _ in range((yield from _number())):  # pending entries
            yield Need(16 + 8)
            yield from _number()
        for _ in range((yield from _number())):  # consumers
            yield from _string()
            yield Need(8 + (8 if version >= 3 else 0))
            for _ in range((yield from _number())):
                yield Need(16)


def _ignore(_: memoryview) -> None:
    return None
