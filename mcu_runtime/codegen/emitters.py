"""One C emitter per kernel module: how each op of a schedule step becomes a runtime call.

TinyEngine's code generator has every op emit its own C call; here every kernel family
(``kernels/conv.py``, ``depthwise.py``, ...) has an ``emit_*`` function that turns one
schedule step into calls of the header-only kernels in ``mcu_runtime/c/``. All the numbers
the C code needs at run time — per-channel (multiplier, shift), activation clamps, softmax
constants, look-up tables for unary ops — are computed here by the *same* Python functions
the emulator runs, so the C runtime has no floating point and cannot drift from the emulator.

A step reads and writes *boxes*: the emulator's "``in_region`` of the buffer holding the
tensor" becomes a pointer at ``arena + offset + ((y0 - holder.y0) * holder.w + x0 - holder.x0)
* C`` with the holder's row stride; a per-layer step is the same with whole-tensor boxes and
the pads of ``padding.same_valid_pad``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import TinymcuError
from .. import kernels
from ..ir import Graph, Op
from ..kernels import activation, conv, elementwise, fully_connected, mean, padding, shape_ops
from ..kernels.quant import activation_range, quantize_multiplier
from ..regions import pad_widths, window
from ..schedule import Region, Step

#: C type of each constant array element type, and the C types' sizes
_CTYPES = {"int8": "int8_t", "int32": "int32_t"}
_CSIZES = {"int8_t": 1, "uint8_t": 1, "int32_t": 4}


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


@dataclass
class CUnit:
    """The C translation unit being built: constant arrays, parameter structs, step code.

    ``sparse`` stores every conv, depthwise and fully-connected filter as a bitmask plus its
    non-zero values (the format ``prune/budget.py`` counts flash in)."""

    graph: Graph
    plan: object
    sparse: bool = False
    arrays: list[str] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    const_bytes: int = 0
    #: every box a step passes to a kernel, in first-use order (``tm_boxes[k]`` in the C)
    boxes: dict[Box, int] = field(default_factory=dict)
    _names: set[str] = field(default_factory=set)
    _op_params: dict[tuple[int, str], str] = field(default_factory=dict)

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
            raise TinymcuError(f"tensor {tensor} ({t.name}) is not an int8/int32 constant")
        return self.array(name, _CTYPES[t.dtype], t.data)

    def filter_arrays(self, tensor: int, tag: str, rows: np.ndarray) -> tuple[str, str | None]:
        """(filter, mask) names: the dense filter and None, or — sparse — its non-zero values
        and bitmask, in ``rows`` order (the filter laid out as the kernel walks it)."""
        if not self.sparse:
            return self.tensor_array(tensor, f"{tag}_filter"), None
        flat = np.asarray(rows).ravel()
        nonzero = flat != 0
        mask = self.array(f"{tag}_mask", "uint8_t", np.packbits(nonzero, bitorder="little"))
        return self.array(f"{tag}_values", "int8_t", flat[nonzero]), mask

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
        n = kernels.step_scratch(self.graph, self.plan.schedule.steps[i])
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


def _mask_field(mask: str | None) -> dict[str, str]:
    """``.mask`` for a sparse filter; omitted (NULL) for a dense one."""
    return {"mask": mask} if mask is not None else {}


def _qp(graph: Graph, t: int) -> tuple[float, int]:
    q = graph.tensors[t].quant
    if q is None:
        raise TinymcuError(f"tensor {t} has no quantization")
    return float(np.float32(q.scale.ravel()[0])), int(q.zero_point.ravel()[0])


def _act_range(op: Op, graph: Graph) -> tuple[int, int]:
    scale, zp = _qp(graph, op.outputs[0])
    return activation_range(op.attrs.get("activation", "NONE"), scale, zp)


def _check_shift(shift: np.ndarray | int, what: str) -> None:
    s = np.asarray(shift)
    if s.size and (s.min() < -31 or s.max() > 31):
        raise TinymcuError(f"{what}: requantization shift outside [-31, 31]")


def _require_maps(op: Op, graph: Graph) -> None:
    """Window and padding kernels walk H and W: input and output must be batch-1 NHWC."""
    for t in (op.inputs[0], op.outputs[0]):
        shape = graph.tensors[t].shape
        if len(shape) != 4 or shape[0] != 1:
            raise TinymcuError(f"op {op.index} {op.kind} on shape {list(shape)}: the C runtime "
                               f"needs batch-1 NHWC maps")


def _window_pad(op: Op, graph: Graph, step: Step, in_box: Box,
                out_box: Box) -> tuple[int, int, int, int]:
    """The step's explicit pad (patch) or the op's SAME/VALID/EXPLICIT pad (per layer),
    checked against the output box it must produce. The geometry is the patch scheduler's
    (``regions.window``), so a fused op is walked as its depthwise, as on tiles."""
    win = window(op, graph)
    pad = step.pad if step.pad is not None else padding.same_valid_pad(
        op, (in_box.h, in_box.w), win.kernel)
    expect = padding.output_hw((in_box.h, in_box.w), win.kernel, win.stride, win.dilation, pad)
    if expect != (out_box.h, out_box.w):
        raise TinymcuError(f"op {op.index} {op.kind}: a {in_box.h}x{in_box.w} input with pad "
                           f"{pad} gives {expect}, the step writes {out_box.h}x{out_box.w}")
    return pad


# -- conv.py / depthwise.py / expand_depthwise.py ---------------------------------------------

def _conv_fields(unit: CUnit, op: Op, tag: str) -> str:
    g = unit.graph
    flt = g.tensors[op.inputs[1]]
    channels = g.tensors[op.outputs[0]].shape[-1]
    mult, shift = conv.channel_multipliers(op, g, channels)
    _check_shift(shift, f"op {op.index} {op.kind}")
    in_c = g.tensors[op.inputs[0]].shape[-1]
    _, in_zp = _qp(g, op.inputs[0])
    _, out_zp = _qp(g, op.outputs[0])
    lo, hi = _act_range(op, g)
    sh, sw = op.attrs.get("stride", (1, 1))
    dh, dw = op.attrs.get("dilation", (1, 1))
    multiplier = channels // in_c if op.kind == "DEPTHWISE_CONV_2D" else 1
    rows = np.asarray(flt.data)
    if op.kind == "DEPTHWISE_CONV_2D":  # sparse rows are channel-major: (C*M, KH*KW)
        rows = rows.reshape(-1, channels).T
    w, mask = unit.filter_arrays(op.inputs[1], tag, rows)
    b = unit.tensor_array(op.inputs[2] if len(op.inputs) > 2 else -1, f"{tag}_bias")
    m = unit.array(f"{tag}_mult", "int32_t", mult)
    s = unit.array(f"{tag}_shift", "int32_t", shift)
    return c_struct(filter=w, bias=b, mult=m, shift=s, kh=flt.shape[1], kw=flt.shape[2], sh=sh,
                    sw=sw, dh=dh, dw=dw, depth_multiplier=multiplier, in_zp=in_zp,
                    out_zp=out_zp, act_min=lo, act_max=hi, **_mask_field(mask))


def emit_conv(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    _require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = _window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "conv", "tm_conv_params",
                       lambda: _conv_fields(unit, op, f"op{op.index}"))
    return [f"tm_conv2d({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]});"]


def emit_depthwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    _require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = _window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "dw", "tm_conv_params",
                       lambda: _conv_fields(unit, op, f"op{op.index}"))
    scratch = unit.scratch(i)
    if scratch is not None:  # the planner may have put the output over the input
        return [f"tm_depthwise_inplace({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, "
                f"{pad[2]}, {scratch});"]
    return [f"tm_depthwise({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]});"]


def emit_expand_depthwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    expand, dw = op.attrs["expand"], op.attrs["depthwise"]
    _require_maps(op, unit.graph)
    if unit.graph.tensors[expand.inputs[1]].shape[1:3] != (1, 1) \
            or tuple(expand.attrs.get("stride", (1, 1))) != (1, 1):
        raise TinymcuError(f"op {op.index} EXPAND_DEPTHWISE: the expand must be 1x1, stride 1")
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = _window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "xdw", "tm_expand_dw_params", lambda: c_struct(
        expand=_conv_fields(unit, expand, f"op{op.index}_expand"),
        dw=_conv_fields(unit, dw, f"op{op.index}_dw")))
    scratch = unit.scratch(i)
    if scratch is None:
        raise TinymcuError(f"op {op.index} EXPAND_DEPTHWISE has no scratch plane in the plan")
    return [f"tm_expand_depthwise({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]}, "
            f"{scratch});"]


# -- fully_connected.py -----------------------------------------------------------------------

def emit_fully_connected(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph

    def fields() -> str:
        o, n = g.tensors[op.inputs[1]].shape
        mult, shift = fully_connected._multipliers(op, g, o)
        _check_shift(shift, f"op {op.index} FULLY_CONNECTED")
        mult, shift = np.broadcast_to(mult, (o,)), np.broadcast_to(shift, (o,))
        _, in_zp = _qp(g, op.inputs[0])
        _, w_zp = _qp(g, op.inputs[1])
        _, out_zp = _qp(g, op.outputs[0])
        lo, hi = _act_range(op, g)
        tag = f"op{op.index}"
        if w_zp == 0:  # a zero weight then contributes nothing and may be left out
            w, mask = unit.filter_arrays(op.inputs[1], tag, g.tensors[op.inputs[1]].data)
        else:
            w, mask = unit.tensor_array(op.inputs[1], f"{tag}_weights"), None
        b = unit.tensor_array(op.inputs[2] if len(op.inputs) > 2 else -1, f"{tag}_bias")
        m = unit.array(f"{tag}_mult", "int32_t", mult)
        s = unit.array(f"{tag}_shift", "int32_t", shift)
        batches = g.tensors[op.inputs[0]].size // n
        return c_struct(weights=w, bias=b, mult=m, shift=s, in_n=n, out_n=o, batches=batches,
                        in_zp=in_zp, w_zp=w_zp, out_zp=out_zp, act_min=lo, act_max=hi,
                        **_mask_field(mask))

    p = unit.op_params(op, "fc", "tm_fc_params", fields)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    return [f"tm_fully_connected({p}, (const int8_t *)(tm_arena + {src.offset}), "
            f"(int8_t *)(tm_arena + {dst.offset}));"]


# -- elementwise.py ---------------------------------------------------------------------------

def emit_elementwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    a, b = op.inputs[0], op.inputs[1]
    out_shape = g.tensors[op.outputs[0]].shape
    for t in (a, b):
        if g.tensors[t].is_const or g.tensors[t].shape != out_shape:
            raise TinymcuError(f"op {op.index} {op.kind}: the C runtime needs two activation "
                               f"inputs of the output's shape (no broadcasting)")

    def fields() -> str:
        _, a_zp = _qp(g, a)
        _, b_zp = _qp(g, b)
        _, out_zp = _qp(g, op.outputs[0])
        lo, hi = _act_range(op, g)
        if op.kind == "MUL":
            real = (elementwise._scale(g, a) * elementwise._scale(g, b)
                    / elementwise._scale(g, op.outputs[0]))
            pairs = [(0, 0), (0, 0), quantize_multiplier(real)]
        else:
            pairs = elementwise._add_multipliers(op, g)
        _check_shift([s for _, s in pairs], f"op {op.index} {op.kind}")
        kind = {"ADD": "TM_ADD", "SUB": "TM_SUB", "MUL": "TM_MUL"}[op.kind]
        (am, ash), (bm, bsh), (om, osh) = pairs
        return c_struct(kind=kind, a_zp=a_zp, b_zp=b_zp, out_zp=out_zp, a_mult=am, a_shift=ash,
                        b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh, act_min=lo,
                        act_max=hi)

    p = unit.op_params(op, "elt", "tm_eltwise_params", fields)
    a_box, b_box = unit.in_box(step, a), unit.in_box(step, b)
    return [f"tm_eltwise({p}, {unit.ref(a_box)}, {unit.ref(b_box)}, "
            f"{unit.ref(unit.out_box(step, op))});"]


# -- pool.py / mean.py ------------------------------------------------------------------------

def emit_pool(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    _require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    kernel = tuple(op.attrs["filter"])
    pad = _window_pad(op, unit.graph, step, src, dst)

    def fields() -> str:
        sh, sw = op.attrs.get("stride", (1, 1))
        lo, hi = _act_range(op, unit.graph)
        return c_struct(kh=kernel[0], kw=kernel[1], sh=sh, sw=sw, act_min=lo, act_max=hi)

    p = unit.op_params(op, "pool", "tm_pool_params", fields)
    fn = "tm_avg_pool" if op.kind == "AVERAGE_POOL_2D" else "tm_max_pool"
    return [f"{fn}({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]});"]


def emit_mean(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    axes = mean._axes(op, g)
    shape = g.tensors[op.inputs[0]].shape
    if len(shape) != 4 or shape[0] != 1 or set(axes) != {1, 2}:
        raise TinymcuError(f"op {op.index} MEAN over axes {list(axes)} of shape {list(shape)}: "
                           f"the C runtime reduces H and W of a batch-1 NHWC map only")

    def fields() -> str:
        s_in, zp_in = _qp(g, op.inputs[0])
        s_out, zp_out = _qp(g, op.outputs[0])
        count = int(shape[1] * shape[2])
        m, shift = quantize_multiplier(s_in / s_out)
        if zp_in == zp_out and s_in == s_out and not mean._special_4d(op, g, axes):
            return c_struct(rescale=0, count=count, mult=0, shift=0, in_zp=zp_in,
                            out_zp=zp_out)
        sh = min(count.bit_length() - 1, 32, 31 + shift)
        _check_shift(shift - sh, f"op {op.index} MEAN")
        return c_struct(rescale=1, count=count, mult=(m << sh) // count, shift=shift - sh,
                        in_zp=zp_in, out_zp=zp_out)

    p = unit.op_params(op, "mean", "tm_mean_params", fields)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    return [f"tm_mean_hw({p}, {unit.ref(src)}, (int8_t *)(tm_arena + {dst.offset}));"]


# -- activation.py ----------------------------------------------------------------------------

def _int8_io(op: Op, graph: Graph) -> None:
    for t in (op.inputs[0], op.outputs[0]):
        if graph.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} {op.kind} on {graph.tensors[t].dtype}: the C "
                               f"runtime is int8 only")


def emit_activation(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    """SOFTMAX runs gemmlowp's fixed point in C; the pointwise activations are exact
    256-entry tables made by running the emulator's own kernel on every int8 value."""
    g = unit.graph
    _int8_io(op, g)
    if op.kind == "SOFTMAX":
        s_in, _ = _qp(g, op.inputs[0])
        real = min(float(op.attrs.get("beta", 1.0)) * s_in * float(1 << 26), float((1 << 31) - 1))
        multiplier, left_shift = quantize_multiplier(real)
        if not 0 <= left_shift <= 31:
            raise TinymcuError(f"op {op.index} SOFTMAX: input scale gives shift {left_shift}")
        diff_min = -activation._input_radius(5, left_shift)
        p = unit.op_params(op, "softmax", "tm_softmax_params",
                           lambda: c_struct(mult=multiplier, left_shift=left_shift,
                                            diff_min=diff_min))
        t = g.tensors[op.inputs[0]]
        depth = int(t.shape[-1]) if t.shape else 1
        src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
        return [f"tm_softmax({p}, (const int8_t *)(tm_arena + {src.offset}), "
                f"(int8_t *)(tm_arena + {dst.offset}), {t.size // depth}, {depth});"]
    return [_copy(unit, unit.in_box(step, op.inputs[0]), unit.out_box(step, op),
                  _unary_lut(unit, op))]


def _unary_lut(unit: CUnit, op: Op) -> str:
    values = np.arange(-128, 128, dtype=np.int8)
    table = kernels.get(op.kind).run(op, unit.graph, [values])[0]
    return unit.array(f"op{op.index}_lut", "int8_t", np.asarray(table).ravel())


# -- shape_ops.py -----------------------------------------------------------------------------

def emit_shape_ops(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    if op.kind in ("RESHAPE", "SQUEEZE"):
        src = unit.buffer_offset(step, op.inputs[0])
        dst = unit.buffer_offset(step, op.outputs[0])
        if src == dst:
            return ["/* same bytes, new shape: nothing to do */"]
        n = g.tensors[op.outputs[0]].nbytes
        return [f"memmove(tm_arena + {dst}, tm_arena + {src}, {n});"]
    if op.kind == "QUANTIZE":
        _int8_io(op, g)
        return [_copy(unit, unit.in_box(step, op.inputs[0]), unit.out_box(step, op),
                      _unary_lut(unit, op))]
    if op.kind == "CONCATENATION":
        return _emit_concat(unit, op, step)
    if op.kind in ("PAD", "PADV2"):
        return _emit_pad(unit, op, step)
    raise TinymcuError(f"op {op.index} {op.kind} is not supported by the C runtime")


def _concat_luts(unit: CUnit, op: Op) -> list[str | None]:
    """Per input: a requantizing look-up table where its quantization differs from the
    output's (the emulator's own ConcatenationWithScaling, run on every int8 value)."""
    g = unit.graph
    rank = len(g.tensors[op.inputs[0]].shape)
    axis = shape_ops._axis(op, rank)
    shape = [1] * rank
    shape[axis] = 256
    probe = np.arange(-128, 128, dtype=np.int8).reshape(shape)
    joined = np.asarray(shape_ops.run(op, g, [probe] * len(op.inputs))[0])
    out = []
    for j, t in enumerate(op.inputs):
        if g.tensors[t].quant == g.tensors[op.outputs[0]].quant:
            out.append(None)
            continue
        part = np.take(joined, range(256 * j, 256 * (j + 1)), axis=axis).ravel()
        out.append(unit.array(f"op{op.index}_lut{j}", "int8_t", part))
    return out


def _emit_concat(unit: CUnit, op: Op, step: Step) -> list[str]:
    g = unit.graph
    _int8_io(op, g)
    for t in op.inputs:
        if g.tensors[t].is_const or g.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} CONCATENATION of a constant or non-int8 tensor "
                               f"is not supported by the C runtime")
    out_t = g.tensors[op.outputs[0]]
    rank = len(out_t.shape)
    axis = shape_ops._axis(op, rank)
    luts = _concat_luts(unit, op)
    lines = []
    if rank == 4 and axis == 3 and out_t.shape[0] == 1:
        dst = unit.out_box(step, op)
        at = 0
        for t, lut in zip(op.inputs, luts):
            src = unit.in_box(step, t)
            lines.append(_copy(unit, src, dst.sub(0, 0, at, src.h, src.w, src.c), lut))
            at += src.c
        return lines
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} CONCATENATION on a tile must be along channels")
    outer = int(np.prod(out_t.shape[:axis], dtype=np.int64))
    total = int(np.prod(out_t.shape[axis:], dtype=np.int64))
    base = unit.buffer_offset(step, op.outputs[0])
    at = 0
    for t, lut in zip(op.inputs, luts):
        inner = int(np.prod(g.tensors[t].shape[axis:], dtype=np.int64))
        src = Box(unit.buffer_offset(step, t), outer, 1, inner, inner, inner)
        lines.append(_copy(unit, src, Box(base + at, outer, 1, inner, inner, total), lut))
        at += inner
    return lines


def _copy(unit: CUnit, src: Box, dst: Box, lut: str | None) -> str:
    return f"tm_copy_box({unit.ref(src)}, {unit.ref(dst)}, {lut or 'NULL'});"


def _emit_pad(unit: CUnit, op: Op, step: Step) -> list[str]:
    g = unit.graph
    _int8_io(op, g)
    _require_maps(op, g)
    if step.pad is not None:  # a tile: only the part of the border inside it
        widths = [(0, 0), step.pad[0:2], step.pad[2:4], (0, 0)]
    else:
        widths = pad_widths(op, g)
        if widths is None or widths[0] != (0, 0) or min(min(w) for w in widths) < 0:
            raise TinymcuError(f"op {op.index} {op.kind}: the C runtime needs constant, "
                               f"non-negative paddings and none on the batch axis")
    if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        value = int(np.asarray(g.tensors[op.inputs[2]].data).ravel()[0])
    else:
        value = _qp(g, op.outputs[0])[1]
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    if [src.h + sum(widths[1]), src.w + sum(widths[2]), src.c + sum(widths[3])] != \
            [dst.h, dst.w, dst.c]:
        raise TinymcuError(f"op {op.index} {op.kind}: paddings {widths} do not turn the "
                           f"{src.h}x{src.w}x{src.c} input into the {dst.h}x{dst.w}x{dst.c} output")
    inner = dst.sub(widths[1][0], widths[2][0], widths[3][0], src.h, src.w, src.c)
    return [f"tm_fill_box({unit.ref(dst)}, {value});", _copy(unit, src, inner, None)]


Emitter = Callable[[CUnit, Op, Step, int], list[str]]

#: op kind → the emitter of its kernel module
EMITTERS: dict[str, Emitter] = {
    "CONV_2D": emit_conv,
    "DEPTHWISE_CONV_2D": emit_depthwise,
    "EXPAND_DEPTHWISE": emit_expand_depthwise,
    "FULLY_CONNECTED": emit_fully_connected,
    "ADD": emit_elementwise, "SUB": emit_elementwise, "MUL": emit_elementwise,
    "AVERAGE_POOL_2D": emit_pool, "MAX_POOL_2D": emit_pool,
    "MEAN": emit_mean,
    "SOFTMAX": emit_activation, "RELU": emit_activation, "RELU6": emit_activation,
    "LOGISTIC": emit_activation, "HARD_SWISH": emit_activation,
    "RESHAPE": emit_shape_ops, "SQUEEZE": emit_shape_ops, "CONCATENATION": emit_shape_ops,
    "PAD": emit_shape_ops, "PADV2": emit_shape_ops, "QUANTIZE": emit_shape_ops,
}


def supported() -> list[str]:
    """Op kinds the C runtime can run."""
    return sorted(EMITTERS)
