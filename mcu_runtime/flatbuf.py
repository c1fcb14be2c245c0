"""A minimal, bounds-checked reader for FlatBuffers tables and vectors.

Why not the ``flatbuffers`` / ``tflite`` packages: their generated readers trust the file,
so a truncated or hostile .tflite turns into ``IndexError``, a huge allocation or garbage.
``tinymcu check`` is a CI gate that must answer every input with one clear line, so every
offset, vtable and vector length here is checked against the buffer before it is used,
and the total bytes handed out as vectors are capped (a *read budget*): a crafted file
whose vectors all alias the same bytes cannot make the reader do quadratic work or
allocate far more than the file holds.

Wire format recap (flatbuffers.dev "internals"): a table starts with an ``int32`` signed
offset back to its vtable; the vtable is ``uint16`` vtable size, ``uint16`` table size, then
one ``uint16`` field offset per slot (0 = absent, use the default). Reference fields hold a
``uint32`` offset relative to the field's own position; a vector/string is a ``uint32``
element count followed by the elements (strings add a NUL). All little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from tinymcu.errors import TinymcuError

_U16 = struct.Struct("<H")
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")

#: struct format of every scalar kind a schema field may have
SCALAR_FORMATS = {"bool": "<?", "int8": "<b", "uint8": "<B", "int16": "<h", "uint16": "<H",
                  "int32": "<i", "uint32": "<I", "int64": "<q", "uint64": "<Q",
                  "float32": "<f", "float64": "<d"}


class MalformedFlatbuffer(TinymcuError):
    """The bytes are not a well-formed flatbuffer (bad offset, length, vtable, ...)."""


class FlatBuffer:
    """Read-only view of one flatbuffer with bounds checks and a read budget.

    ``budget`` caps the total bytes returned by :meth:`Table.array`/:meth:`Table.bytes`
    (default: 8× the buffer plus 1 MiB, far above what any real model reads).
    """

    def __init__(self, data: bytes | bytearray | memoryview, budget: int | None = None):
        self.data = memoryview(data).cast("B")
        self.size = len(self.data)
        self.budget = 8 * self.size + (1 << 20) if budget is None else budget

    def fail(self, what: str, pos: int) -> MalformedFlatbuffer:
        return MalformedFlatbuffer(
            f"malformed .tflite flatbuffer: {what} at byte {pos} (file is {self.size} bytes)")

    def check(self, pos: int, nbytes: int, what: str) -> None:
        """Raise unless ``[pos, pos + nbytes)`` lies inside the buffer."""
        if pos < 0 or nbytes < 0 or pos + nbytes > self.size:
            raise self.fail(f"{what} of {nbytes} bytes lies outside the file", pos)

    def charge(self, nbytes: int, pos: int) -> None:
        """Spend ``nbytes`` of the read budget (see the class docstring)."""
        self.budget -= nbytes
        if self.budget < 0:
            raise self.fail("vectors alias the same bytes far more often than any real "
                            "model does (read budget exhausted)", pos)

    def u16(self, pos: int) -> int:
        self.check(pos, 2, "uint16")
        return _U16.unpack_from(self.data, pos)[0]

    def i32(self, pos: int) -> int:
        self.check(pos, 4, "int32")
        return _I32.unpack_from(self.data, pos)[0]

    def u32(self, pos: int) -> int:
        self.check(pos, 4, "uint32")
        return _U32.unpack_from(self.data, pos)[0]

    def scalar(self, pos: int, kind: str) -> int | float | bool:
        fmt = SCALAR_FORMATS[kind]
        self.check(pos, struct.calcsize(fmt), kind)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def identifier(self) -> bytes:
        """The 4-byte file identifier after the root offset (b"" if the buffer is too short)."""
        return bytes(self.data[4:8]) if self.size >= 8 else b""

    def root(self) -> Table:
        """The root table (its offset is the first ``uint32`` of the buffer)."""
        if self.size < 8:
            raise self.fail("buffer too short to hold a flatbuffer", 0)
        return Table(self, self.u32(0))

    def deref(self, pos: int, what: str) -> int:
        """Follow the ``uint32`` forward offset stored at ``pos``."""
        target = pos + self.u32(pos)
        if target >= self.size:
            raise self.fail(f"{what} offset points outside the file", pos)
        return target


class Table:
    """One flatbuffer table; fields are addressed by slot number (declaration order in .fbs,
    a union taking two slots: its type, then its value)."""

    __slots__ = ("fb", "pos", "_vtable", "_vsize", "_tsize")

    def __init__(self, fb: FlatBuffer, pos: int):
        self.fb = fb
        self.pos = pos
        vtable = pos - fb.i32(pos)
        vsize = fb.u16(vtable)
        tsize = fb.u16(vtable + 2)
        if vsize < 4 or vsize % 2:
            raise fb.fail(f"vtable size {vsize} is invalid", vtable)
        fb.check(vtable, vsize, "vtable")
        if tsize < 4:
            raise fb.fail(f"table size {tsize} is invalid", pos)
        fb.check(pos, tsize, "table")
        self._vtable, self._vsize, self._tsize = vtable, vsize, tsize

    def field(self, slot: int, nbytes: int) -> int | None:
        """Absolute position of field ``slot`` (``nbytes`` wide), or None if absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self._vsize:
            return None
        off = self.fb.u16(self._vtable + entry)
        if off == 0:
            return None
        if off + nbytes > self._tsize:
            raise self.fb.fail(f"field {slot} lies outside its table", self.pos)
        return self.pos + off

    def scalar(self, slot: int, kind: str, default: int | float | bool = 0) -> int | float | bool:
        pos = self.field(slot, struct.calcsize(SCALAR_FORMATS[kind]))
        return default if pos is None else self.fb.scalar(pos, kind)

    def table(self, slot: int) -> Table | None:
        pos = self.field(slot, 4)
        return None if pos is None else Table(self.fb, self.fb.deref(pos, f"table field {slot}"))

    def _vector(self, slot: int, elem_size: int) -> tuple[int, int] | None:
        """(start of elements, count) of a vector field, checked to fit in the buffer."""
        pos = self.field(slot, 4)
        if pos is None:
            return None
        vec = self.fb.deref(pos, f"vector field {slot}")
        count = self.fb.u32(vec)
        self.fb.check(vec + 4, count * elem_size, f"vector of {count} elements")
        return vec + 4, count

    def length(self, slot: int, elem_size: int) -> int:
        """Element count of a vector field (0 if absent)."""
        vec = self._vector(slot, elem_size)
        return 0 if vec is None else vec[1]

    def bytes(self, slot: int) -> bytes | None:
        vec = self._vector(slot, 1)
        if vec is None:
            return None
        start, count = vec
        self.fb.charge(count, start)
        return bytes(self.fb.data[start:start + count])

    def string(self, slot: int) -> str | None:
        raw = self.bytes(slot)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def array(self, slot: int, kind: str) -> np.ndarray | None:
        """A numeric vector field as a native-endian numpy copy (``kind`` e.g. "int32")."""
        dtype = np.dtype(SCALAR_FORMATS[kind])
        vec = self._vector(slot, dtype.itemsize)
        if vec is None:
            return None
        start, count = vec
        self.fb.charge(count * dtype.itemsize, start)
        return np.frombuffer(self.fb.data, dtype=dtype, count=count, offset=start).astype(
            dtype.newbyteorder("="))

    def tables(self, slot: int) -> TableVector:
        """A vector of tables (each element a ``uint32`` offset to a table)."""
        vec = self._vector(slot, 4)
        return TableVector(self.fb, *(vec or (0, 0)))


class TableVector(Sequence):
    """A vector of tables, decoded on access: a model may list many buffers or operator
    codes that nothing uses, and a fuzzed count must not cost time up front."""

    def __init__(self, fb: FlatBuffer, start: int, count: int):
        self.fb, self.start, self.n = fb, start, count

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not 0 <= i < self.n:
            raise IndexError(i)
        return Table(self.fb, self.fb.deref(self.start + 4 * i, "table in vector"))
