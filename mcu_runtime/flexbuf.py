"""A small, bounds-checked FlexBuffers decoder for the options of TFLite custom ops.

Why: a custom op (TFLM's Signal library: SignalWindow, SignalRfft, ...) carries its
attributes in ``Operator.custom_options`` as a FlexBuffer map, not a builtin options table.
``tinymcu check`` must read them without TensorFlow and must answer a fuzzed buffer with one
line, so — like :mod:`~tinymcu.mcu_runtime.flatbuf` — every offset and length is checked
before it is followed, and nesting is capped.

Wire format recap (flatbuffers.dev "FlexBuffers internals"): the buffer ends with the root's
value (``root_width`` bytes), its packed type byte and ``root_width``. A packed type is
``type << 2 | log2(bit width)``. Scalars (int, uint, float, bool, null) are stored inline at
the width of the vector or map that holds them; everything else is an unsigned offset
*backwards* from where it is stored. A vector's element count sits just before its first
element; an untyped vector or map is followed by one packed type byte per element; a map
is a vector of values preceded by (offset to its sorted keys vector, keys' byte width).
Typed vectors (``VECTOR_INT`` ...) hold one scalar type at the width of the reference;
fixed typed vectors (``VECTOR_INT2`` ...) have no count. All little-endian.
"""

from __future__ import annotations

import struct
from typing import Any

from tinymcu.errors import TinymcuError

#: FlexBuffers type codes (flexbuffers.h ``Type``)
NULL, INT, UINT, FLOAT, KEY, STRING = 0, 1, 2, 3, 4, 5
INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT, MAP, VECTOR = 6, 7, 8, 9, 10
VECTOR_INT, VECTOR_UINT, VECTOR_FLOAT, VECTOR_KEY = 11, 12, 13, 14
VECTOR_INT2, VECTOR_INT4 = 16, 22  # 16..24: fixed-length typed vectors of 2, 3, 4
BLOB, BOOL, VECTOR_BOOL = 25, 26, 36

#: deeper nesting than any op's options would use is treated as malformed
MAX_DEPTH = 16

_UINT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}
_SINT = {1: "<b", 2: "<h", 4: "<i", 8: "<q"}
_FLOAT = {4: "<f", 8: "<d"}


class MalformedFlexbuffer(TinymcuError):
    """The custom options are not a well-formed FlexBuffer."""


class _Decoder:
    def __init__(self, data: bytes, what: str):
        self.data = data
        self.what = what

    def fail(self, msg: str, pos: int) -> MalformedFlexbuffer:
        return MalformedFlexbuffer(f"{self.what}: malformed FlexBuffer: {msg} at byte {pos} "
                                   f"(options are {len(self.data)} bytes)")

    def read(self, pos: int, width: int, table: dict[int, str]) -> Any:
        if width not in table:
            raise self.fail(f"byte width {width} is invalid", pos)
        if pos < 0 or pos + width > len(self.data):
            raise self.fail(f"a {width}-byte value lies outside the options", pos)
        return struct.unpack_from(table[width], self.data, pos)[0]

    def uint(self, pos: int, width: int) -> int:
        return int(self.read(pos, width, _UINT))

    def target(self, pos: int, width: int) -> int:
        """Follow the backward offset stored at ``pos``."""
        off = self.uint(pos, width)
        if off > pos:
            raise self.fail(f"offset {off} points outside the options", pos)
        return pos - off

    def value(self, pos: int, parent_width: int, packed: int, depth: int) -> Any:
        """The value stored at ``pos`` (``parent_width`` bytes) with packed type ``packed``."""
        if depth > MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH}", pos)
        kind, width = packed >> 2, 1 << (packed & 3)
        if kind == NULL:
            return None
        if kind == INT:
            return int(self.read(pos, parent_width, _SINT))
        if kind == UINT:
            return self.uint(pos, parent_width)
        if kind == BOOL:
            return self.uint(pos, parent_width) != 0
        if kind == FLOAT:
            return float(self.read(pos, parent_width, _FLOAT))
        at = self.target(pos, parent_width)
        if kind == INDIRECT_INT:
            return int(self.read(at, width, _SINT))
        if kind == INDIRECT_UINT:
            return self.uint(at, width)
        if kind == INDIRECT_FLOAT:
            return float(self.read(at, width, _FLOAT))
        if kind == KEY:
            return self.key(at)
        if kind in (STRING, BLOB):
            raw = self.blob(at, width)
            return raw.decode("utf-8", errors="replace") if kind == STRING else raw
        if kind == VECTOR:
            return self.untyped(at, width, self.count(at, width), depth)
        if kind == MAP:
            return self.map(at, width, depth)
        if VECTOR_INT <= kind <= VECTOR_KEY or kind == VECTOR_BOOL:
            elem = {VECTOR_INT: INT, VECTOR_UINT: UINT, VECTOR_FLOAT: FLOAT,
                    VECTOR_KEY: KEY, VECTOR_BOOL: BOOL}[kind]
            return self.typed(at, width, self.count(at, width), elem, depth)
        if VECTOR_INT2 <= kind <= VECTOR_INT4 + 2:
            n, elem = 2 + (kind - VECTOR_INT2) // 3, (INT, UINT, FLOAT)[(kind - VECTOR_INT2) % 3]
            return self.typed(at, width, n, elem, depth)
        raise self.fail(f"unknown value type {kind}", pos)

    def count(self, at: int, width: int) -> int:
        n = self.uint(at - width, width)
        if n * width > len(self.data):
            raise self.fail(f"a vector of {n} elements cannot fit", at)
        return n

    def key(self, at: int) -> str:
        end = self.data.find(b"\0", at)
        if end < 0:
            raise self.fail("a key has no terminating NUL", at)
        return self.data[at:end].decode("utf-8", errors="replace")

    def blob(self, at: int, width: int) -> bytes:
        n = self.count(at, width)
        if at + n > len(self.data):
            raise self.fail(f"a {n}-byte string lies outside the options", at)
        return self.data[at:at + n]

    def typed(self, at: int, width: int, n: int, elem: int, depth: int) -> list:
        return [self.value(at + i * width, width, elem << 2, depth + 1) for i in range(n)]

    def untyped(self, at: int, width: int, n: int, depth: int) -> list:
        types = at + n * width
        if types + n > len(self.data):
            raise self.fail(f"the type bytes of a {n}-element vector lie outside", at)
        return [self.value(at + i * width, width, self.data[types + i], depth + 1)
                for i in range(n)]

    def map(self, at: int, width: int, depth: int) -> dict[str, Any]:
        n = self.count(at, width)
        keys_ref = at - 3 * width
        keys_width = self.uint(at - 2 * width, width)
        keys_at = self.target(keys_ref, width)
        if self.uint(keys_at - keys_width, keys_width) != n:
            raise self.fail("a map's key and value counts differ", at)
        keys = [self.key(self.target(keys_at + i * keys_width, keys_width)) for i in range(n)]
        values = self.untyped(at, width, n, depth)
        return dict(zip(keys, values, strict=True))


def loads(data: bytes, what: str = "custom options") -> Any:
    """Decode a whole FlexBuffer (its root value); ``what`` names it in error messages."""
    dec = _Decoder(bytes(data), what)
    if len(data) < 3:
        raise dec.fail("too short to hold a root", 0)
    width = data[-1]
    packed = data[-2]
    return dec.value(len(data) - 2 - width, width, packed, 0)


def loads_map(data: bytes, what: str = "custom options") -> dict[str, Any]:
    """Decode a FlexBuffer whose root must be a map (a custom op's attributes); an empty
    buffer is an empty map (ops without attributes may carry no options at all)."""
    if not data:
        return {}
    root = loads(data, what)
    if not isinstance(root, dict):
        raise MalformedFlexbuffer(f"{what}: the FlexBuffer root is a {type(root).__name__}, "
                                  "expected a map")
    return root
