"""What every op's C emitter builds on: the translation unit, boxes and shared checks.

TinyEngine's code generator has every op emit its own C call; here every op folder
(``ops/<family>/emit.py``) turns one schedule step into calls of its header-only kernels.
Every number the C code needs at run time — per-channel (multiplier, shift), activation
clamps, softmax constants, look-up tables for unary ops — comes from the op's ``params()``
(or, for tables, its own kernel run on every int8 value), the same values the emulator
uses, so the C runtime has no floating point and cannot drift from the emulator.

A step reads and writes *boxes*: the emulator's "``in_region`` of the buffer holding the
tensor" becomes a pointer at ``arena + offset + ((y0 - holder.y0) * holder.w + x0 - holder.x0)
* C`` with the holder's row stride; a per-layer step is the same with whole-tensor boxes and
the pads of ``geometry.same_valid_pad``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import geometry, ops
from tinymcu.mcu_runtime.codegen.sparse import count_type, plan_formats, sparse_row_lists
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.planner import Plan
from tinymcu.mcu_runtime.schedule import Region, Step

#: C type of each constant array element type, and the C types' sizes
_CTYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t"}
_CSIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "int64_t": 8}


@dataclass(frozen=True)
class Box:
    """Where a box of a tensor lives: arena byte offset of its first element and strides."""

    offset: int
    h: int
    w: int
    c: int
    pix: int
    row: int

    def sub(self, dy: int, dx: int, dc: int, h: int, w: int, c: int) -> Box:
        """The h×w×c box starting (dy, dx, dc) into this one (same strides)."""
        if h == 0 or w == 0 or c == 0:
            return Box(self.offset, h, w, c, self.pix, self.row)
        return Box(self.offset + dy * self.row + dx * self.pix + dc, h, w, c, self.pix, self.row)


#: the bits of ``TM_SPARSE_FORMS`` (``tm_conv.h``'s TM_RQ_HAS_*)
SPARSE_FORM = {"exact": 1, "fast": 2, "full": 4}
#: the bits of ``TM_SPARSE_PATHS`` (``tm_common.h``): tap tables whose outputs may read
#: outside their box, and rows of more than ``TAP_TABLE`` non-zero taps
SPARSE_PATH = {"border": 1, "long": 2}
#: the non-zero taps a tap table holds (``tm_conv.h``'s TM_TAPS)
TAP_TABLE = 16


@dataclass
class CUnit:
    """The C translation unit being built: constant arrays, parameter structs, step code.

    ``sparse`` stores every conv, depthwise and fully-connected filter in the format
    ``codegen.sparse.plan_formats`` picks (dense, bitmask plus non-zero values, or per-row
    non-zero lists), within the flash of the bitmask format ``prune/budget.py`` counts."""

    graph: Graph
    plan: Plan
    sparse: bool = False
    arrays: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    const_bytes: int = 0
    #: every box a step passes to a kernel, in first-use order (``tm_boxes[k]`` in the C)
    boxes: dict[Box, int] = field(default_factory=dict)
    #: the requantization forms the sparse filters' ops take (``TM_SPARSE_FORMS``, a mask of
    #: ``SPARSE_FORM`` bits): the sparse kernels compile in only those loops
    sparse_forms: int = 0
    #: the rare tap-table paths the sparse ops take (``TM_SPARSE_PATHS``, a mask of
    #: ``SPARSE_PATH`` bits): the sparse kernels compile in only those
    sparse_paths: int = 0
    _names: set[str] = field(default_factory=set)
    _op_params: dict[tuple[int, str], str] = field(default_factory=dict)
    _formats: dict[int, str] | None = None

    # -- constants --------------------------------------------------------------------------

    def ref(self, box: Box) -> str:
        """``box`` as an entry of the generated file's ``static const tm_box tm_boxes[]``.

        Why a table: a box built at the call is a fresh stack temporary, and GCC gives each
        of a patch schedule's hundreds of calls its own slot (13 KB of stack for VWW's 283
        steps). Boxes are compile-time constants (arena address + sizes), so one
        de-duplicated table in flash serves every step and the run's frame stays small.
        """
        return f"tm_boxes[{self.boxes.setdefault(box, len(self.boxes))}]"

    def array(self, name: str, ctype: str, values: np.ndarray) -> str:
        """Define ``static const ctype name[]`` (flash) and return its name."""
        if name in self._names:
            return name
        self._names.add(name)
        flat = [int(v) for v in np.asarray(values).ravel().tolist()]
        lines = [", ".join(map(str, flat[i:i + 24])) for i in range(0, len(flat), 24)]
        body = ",\n    ".join(lines)
        self.arrays.append(f"static const {ctype} {name}[{max(len(flat), 1)}] = {{\n    "
                           f"{body if flat else '0'}\n}};")
        self.const_bytes += len(flat) * _CSIZES[ctype]
        return name

    def tensor_array(self, tensor: int, name: str) -> str:
        """A constant tensor as a C array, or NULL for an absent optional input (-1)."""
        if tensor < 0:
            return "NULL"
        t = self.graph.tensors[tensor]
        if not t.is_const or t.dtype not in _CTYPES:
            raise TinymcuError(f"tensor {tensor} ({t.name}) is not an int8/int16/int32/int64 "
                               f"constant")
        return self.array(name, _CTYPES[t.dtype], np.asarray(t.data))

    def filter_arrays(self, tensor: int, tag: str, rows: np.ndarray) -> tuple[str, str | None]:
        """(filter, mask) names: the dense filter and None, or — sparse — its non-zero values
        and bitmask, in ``rows`` order (the filter laid out as the kernel walks it)."""
        if not self.sparse:
            return self.tensor_array(tensor, f"{tag}_filter"), None
        flat = np.asarray(rows).ravel()
        nonzero = flat != 0
        bits = np.packbits(nonzero, bitorder="little")
        # at least a word: the kernels read masks by words (tm_mask_bits, guarded to the
        # mask's own bytes), and GCC flags that guarded load from an array of under 4 bytes
        # as an over-read (-Wstringop-overread, an error under -Werror)
        bits = np.pad(bits, (0, max(0, 4 - bits.size)))
        mask = self.array(f"{tag}_mask", "uint8_t", bits)
        return self.array(f"{tag}_values", "int8_t", flat[nonzero]), mask

    def note_sparse_form(self, fast: bool, act_min: int, act_max: int) -> None:
        """Record the requantization form of a sparse filter's op, as the C kernels'
        ``tm_rq_form`` derives it: exact unless proved bounded (``fast``), then full-range
        when the activation clamp is the whole int8 range."""
        form = "exact" if not fast else "full" if (act_min, act_max) == (-128, 127) else "fast"
        self.sparse_forms |= SPARSE_FORM[form]

    def note_sparse_taps(self, rows: np.ndarray, border: bool) -> None:
        """Record the tap-table paths an op whose filter ``rows`` (one per output channel)
        run as tap tables takes: ``border`` when its outputs may read outside the box (no
        padded plane), the long-row walk when a row has more than ``TAP_TABLE`` non-zero
        taps."""
        rows = np.asarray(rows).reshape(len(rows), -1)
        if border:
            self.sparse_paths |= SPARSE_PATH["border"]
        if rows.size and int(np.count_nonzero(rows, axis=1).max()) > TAP_TABLE:
            self.sparse_paths |= SPARSE_PATH["long"]

    def filter_format(self, op: Op) -> str:
        """How ``op``'s filter is stored: "dense" unless the unit is sparse, else its
        format in the plan (``codegen.sparse.plan_formats``)."""
        if not self.sparse:
            return "dense"
        if self._formats is None:
            self._formats = plan_formats(self.graph)
        return self._formats.get(op.inputs[1], "dense")

    def sparse_rows(self, tag: str, rows: np.ndarray) -> dict[str, str]:
        """The parameter fields of a filter stored as per-row non-zero lists
        (``codegen.sparse.sparse_row_lists``), one row per output channel: ``nz`` and the
        counts, as ``nz_count8`` (uint8) or ``nz_count`` (uint16, a row over 255 entries)."""
        entries, counts = sparse_row_lists(np.asarray(rows).reshape(len(rows), -1))
        ctype, _ = count_type(counts)
        field = "nz_count8" if ctype == "uint8_t" else "nz_count"
        return {"nz": self.array(f"{tag}_nz", "uint8_t", entries),
                field: self.array(f"{tag}_nz_count", ctype, counts)}

    def op_params(self, op: Op, tag: str, ctype: str, fields: Callable[[], str]) -> str:
        """Define the op's ``static const ctype`` parameter struct once; return ``&name``."""
        key = (op.index, tag)
        if key not in self._op_params:
            name = f"op{op.index}_{tag}"
            self.params.append(f"static const {ctype} {name} = {fields()};")
            self._op_params[key] = name
        return "&" + self._op_params[key]

    # -- arena addresses --------------------------------------------------------------------

    def offset(self, name: str, nbytes: int = 0) -> int:
        """Arena offset of a buffer, checked to hold ``nbytes`` inside the arena."""
        if name not in self.plan.offsets:
            raise TinymcuError(f"the plan has no offset for buffer {name!r}")
        off = int(self.plan.offsets[name])
        if off < 0 or off + nbytes > self.plan.arena_bytes:
            raise TinymcuError(f"buffer {name!r} [{off}, {off + nbytes}) lies outside the "
                               f"{self.plan.arena_bytes}-byte arena")
        return off

    def scratch(self, i: int) -> str | None:
        name = f"scratch@{i}"
        if name not in self.plan.offsets:
            return None
        n = ops.step_scratch(self.graph, self.plan.schedule.steps[i])
        return f"(int8_t *)(tm_arena + {self.offset(name, n)})"

    def buffer_offset(self, step: Step, tensor: int) -> int:
        """Arena offset of the buffer holding ``tensor`` at ``step`` (checked to fit)."""
        buf = self.plan.schedule.buffers[step.io[tensor]]
        return self.offset(buf.name, buf.nbytes)

    def box(self, step: Step, tensor: int, region: Region | None) -> Box:
        """The box of ``tensor`` a step reads or writes (``region`` None: the whole buffer)."""
        buf = self.plan.schedule.buffers[step.io[tensor]]
        t = self.graph.tensors[tensor]
        base = self.offset(buf.name, buf.nbytes)
        if len(t.shape) != 4 or t.shape[0] != 1:
            if region is not None or buf.region is not None:
                raise TinymcuError(f"tensor {tensor} is tiled but not a batch-1 NHWC map")
            return Box(base, 1, 1, t.size, t.size, t.size)
        _, height, width, c = t.shape
        holder = buf.region or Region(0, height, 0, width)
        if holder.h * holder.w * c != buf.nbytes:
            raise TinymcuError(f"buffer {buf.name!r} has {buf.nbytes} bytes but holds a "
                               f"{holder.h}x{holder.w}x{c} box of tensor {tensor}")
        r = region or holder
        if not (holder.y0 <= r.y0 and r.y1 <= holder.y1 and holder.x0 <= r.x0
                and r.x1 <= holder.x1):
            raise TinymcuError(f"region {r} is not inside buffer {buf.name}'s region {holder}")
        full = Box(base, holder.h, holder.w, c, c, holder.w * c)
        return full.sub(r.y0 - holder.y0, r.x0 - holder.x0, 0, r.h, r.w, c)

    def in_box(self, step: Step, tensor: int) -> Box:
        return self.box(step, tensor, step.in_region)

    def out_box(self, step: Step, op: Op) -> Box:
        return self.box(step, op.outputs[0], step.out_region)


def c_struct(**fields: object) -> str:
    """A C99 designated initializer: ``{.name = value, ...}`` (field order cannot slip)."""
    return "{" + ", ".join(f".{k} = {v}" for k, v in fields.items()) + "}"


def mask_field(mask: str | None) -> dict[str, str]:
    """``.mask`` for a sparse filter; omitted (NULL) for a dense one."""
    return {"mask": mask} if mask is not None else {}


def check_shift(shift: np.ndarray | int | list[int], what: str) -> None:
    s = np.asarray(shift)
    if s.size and (s.min() < -31 or s.max() > 31):
        raise TinymcuError(f"{what}: requantization shift outside [-31, 31]")


def check_mult(mult: np.ndarray, what: str) -> None:
    """The kernels' shared requantization (``tm_requant_pos``) takes non-negative Q31
    multipliers, which positive scales always give."""
    if np.asarray(mult).size and np.asarray(mult).min() < 0:
        raise TinymcuError(f"{what}: negative requantization multiplier (negative scale)")


def require_maps(op: Op, graph: Graph) -> None:
    """Window and padding kernels walk H and W: input and output must be batch-1 NHWC."""
    for t in (op.inputs[0], op.outputs[0]):
        shape = graph.tensors[t].shape
        if len(shape) != 4 or shape[0] != 1:
            raise TinymcuError(f"op {op.index} {op.kind} on shape {list(shape)}: the C runtime "
                               f"needs batch-1 NHWC maps")


def window_pad(op: Op, graph: Graph, step: Step, in_box: Box,
                out_box: Box) -> tuple[int, int, int, int]:
    """The step's explicit pad (patch) or the op's SAME/VALID/EXPLICIT pad (per layer),
    checked against the output box it must produce. The geometry is the patch scheduler's
    (``OpDef.window``), so a fused op is walked as its depthwise, as on tiles."""
    win = ops.get(op.kind).window(op, graph)
    if win is None:
        raise TinymcuError(f"op {op.index} {op.kind} has no window")
    pad = step.pad if step.pad is not None else geometry.same_valid_pad(
        op, (in_box.h, in_box.w), win.kernel)
    expect = geometry.output_hw((in_box.h, in_box.w), win.kernel, win.stride, win.dilation, pad)
    if expect != (out_box.h, out_box.w):
        raise TinymcuError(f"op {op.index} {op.kind}: a {in_box.h}x{in_box.w} input with pad "
                           f"{pad} gives {expect}, the step writes {out_box.h}x{out_box.w}")
    return pad


def int8_io(op: Op, graph: Graph) -> None:
    """The op's activation input and output must be int8 for its C kernel."""
    for t in (op.inputs[0], op.outputs[0]):
        if graph.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} {op.kind} on {graph.tensors[t].dtype}: the C "
                               f"runtime is int8 only")


def copy_box(unit: CUnit, src: Box, dst: Box, lut: str | None) -> str:
    """A box copy, through a 256-entry look-up table when ``lut`` names one."""
    return f"tm_copy_box({unit.ref(src)}, {unit.ref(dst)}, {lut or 'NULL'});"


def emit_lut(unit: CUnit, op: Op, step: Step, i: int,
             table: tuple[int, ...] | None = None) -> list[str]:
    """A pointwise int8 op as an exact 256-entry table, applied by ``tm_copy_box``: the
    emulator's own kernel run on every int8 value, or the op's ``params()`` table (for
    ops TFLM itself runs as one, or whose kernel refuses some codes)."""
    int8_io(op, unit.graph)
    values = (np.asarray(table) if table is not None else
              ops.get(op.kind).run(op, unit.graph, [np.arange(-128, 128, dtype=np.int8)])[0])
    lut = unit.array(f"op{op.index}_lut", "int8_t", np.asarray(values).ravel())
    return [copy_box(unit, unit.in_box(step, op.inputs[0]), unit.out_box(step, op), lut)]


Emitter = Callable[[CUnit, Op, Step, int], list[str]]


def emitters() -> dict[str, Emitter]:
    """Op kind → its C emitter (every registered op with a C kernel)."""
    reg = ops.registry()
    return {k: reg[k].emit for k in sorted(ops.c_kinds())}


def supported() -> list[str]:
    """Op kinds the C runtime can run."""
    return sorted(ops.c_kinds())
