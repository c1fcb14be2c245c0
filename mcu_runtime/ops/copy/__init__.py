"""Data movement on int8 activations: SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, PACK, UNPACK,
GATHER, TILE, DEPTH_TO_SPACE, SPACE_TO_DEPTH, BATCH_TO_SPACE_ND and SPACE_TO_BATCH_ND —
each a list of strided copies (:mod:`.plan`) run by one numpy executor and one C kernel
(``tm_strided_copy``); GATHER with run-time indices gathers rows (``tm_gather``).

Every op here copies bytes as TFLM does, whatever the quantization of input and output
(TFLM's kernels do not requantize). SPACE_TO_BATCH_ND pads with the output zero point
(as TFLite; TFLM leaves it undefined).
In place: the output may take input 0's memory when executing the copies in order never
reads an element already overwritten (``plan.safe_in_place``: a slice, the first part of a
split); a copy that then maps every element onto itself is skipped in C (zero copy).
Multi-output ops (SPLIT, SPLIT_V, UNPACK) write each output's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op, Tensor
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.copy import plan
from tinymcu.mcu_runtime.ops.copy.plan import CopyParams, from_views, index_array


def _outs(outs: list, n: int | None = None) -> None:
    d.need(len(outs) >= 1 and (n is None or len(outs) == n),
           f"has {len(outs)} outputs, expected {n if n is not None else 'at least 1'}")


def _ints(t: Tensor | None, what: str) -> list[int]:
    data = d.const(t, what)
    d.need(data.dtype.kind in "iu", f"{what} must be an integer tensor")
    return [int(v) for v in np.asarray(data).ravel()]


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    d.need(-rank <= axis < rank, f"{what} {axis} out of range for rank {rank}")
    return axis % rank


def _scalar_opt(opts: Table | None, slot: int, default: int = 0) -> int:
    return int(opts.scalar(slot, "int32", default)) if opts else default


class DataMovement(OpDef):
    """What the data-movement ops share: no arithmetic, the copy executor and emitter."""

    untileable = "moves elements across the whole tensor"
    header = "tm_copy.h"

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        raise NotImplementedError

    def params(self, op: Op, graph: Graph) -> CopyParams:
        return self.copies(op, graph)

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def inplace(self, op: Op, graph: Graph) -> bool:
        return plan.safe_in_place(self.params(op, graph), self.inplace_source(op), 0)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        outs = [(graph.tensors[t].shape, graph.tensors[t].dtype) for t in op.outputs]
        return plan.run(self.params(op, graph), inputs, outs)

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.copy.emit import emit_copies
        return emit_copies(unit, op, step, i)


def _output_dims_copy(op: Op, graph: Graph) -> list[int]:
    """TFLM's ``CreateWritableTensorDimsWithCopy`` of the output's dims (a TfLiteIntArray
    in the tail), which GATHER, DEPTH_TO_SPACE and SPACE_TO_DEPTH make in Prepare."""
    return [4 + 4 * len(graph.tensors[op.outputs[0]].shape)]


def _in_shape(graph: Graph, op: Op, k: int = 0) -> tuple[int, ...]:
    return graph.tensors[op.inputs[k]].shape


def _out_shape(graph: Graph, op: Op, k: int = 0) -> tuple[int, ...]:
    return graph.tensors[op.outputs[k]].shape


def _parts(op: Op, graph: Graph, src: int, axis: int, sizes: list[int]) -> CopyParams:
    """Input ``src`` cut along ``axis`` into consecutive parts, part k to output k."""
    x = index_array(_in_shape(graph, op, src))
    out, start = [], 0
    for k, n in enumerate(sizes):
        sl = (slice(None),) * axis + (slice(start, start + n),)
        out.append(from_views(src, k, x[sl], index_array(_out_shape(graph, op, k))))
        start += n
    return CopyParams(tuple(out))


@register
class Slice(DataMovement):
    """SLICE: ``begin`` and ``size`` (−1 = to the end) as constants (TFLM: rank ≤ 5)."""

    kinds = ("SLICE",)
    tflm_opdata = {"SLICE": ""}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 3, 3, required=3)
        x, out = ins[0], outs[0]
        begin, size = _ints(ins[1], "begin"), _ints(ins[2], "size")
        d.need(len(begin) == len(size) == len(x.shape),
               f"begin/size need {len(x.shape)} entries each")
        size = [dim - b if s == -1 else s for b, s, dim in zip(begin, size, x.shape,
                                                                strict=True)]
        d.need(all(0 <= b and s >= 0 and b + s <= dim
                   for b, s, dim in zip(begin, size, x.shape, strict=True)),
               f"slice begin {begin} size {size} does not fit input {x.shape}")
        d.need(out.shape == tuple(size), f"output shape {out.shape} should be {tuple(size)}")
        return {"begin": tuple(begin)}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        out = _out_shape(graph, op)
        sl = tuple(slice(b, b + n) for b, n in zip(op.attrs["begin"], out, strict=True))
        return CopyParams((from_views(0, 0, index_array(_in_shape(graph, op))[sl],
                                      index_array(out)),))


def strided_slice_axes(shape: tuple[int, ...], begin: list[int], end: list[int],
                       strides: list[int], begin_mask: int, end_mask: int,
                       shrink_mask: int) -> list[tuple[int, int, int, bool]]:
    """(start, stop, stride, shrink) per axis as TFLM's ``StartForAxis``/``StopForAxis``
    resolve them: masks, negative indices, clamping; a shrunk axis takes one element."""
    big = 1 << 31
    axes = []
    for k, size in enumerate(shape):
        s = strides[k]
        start = (-big if s > 0 else big) if begin_mask >> k & 1 else begin[k]
        if start < 0:
            start += size
        start = min(max(start, 0), size) if s > 0 else min(max(start, -1), size - 1)
        shrink = bool(shrink_mask >> k & 1)
        if shrink:
            stop = start + 1
        else:
            stop = (big if s > 0 else -big) if end_mask >> k & 1 else end[k]
            if stop < 0:
                stop += size
            stop = min(max(stop, 0), size) if s > 0 else min(max(stop, -1), size - 1)
        axes.append((start, stop, s, shrink))
    return axes


@register
class StridedSlice(DataMovement):
    """STRIDED_SLICE with constant begin/end/strides, ``begin_mask``, ``end_mask`` and
    ``shrink_axis_mask`` — the masks TFLM implements (it zeroes ellipsis and new-axis masks
    and ignores ``offset``, so models using them are refused). Rank ≤ 4 as in TFLM."""

    kinds = ("STRIDED_SLICE",)
    options_type = {"STRIDED_SLICE": 32}
    #: StridedSliceParams: three counts + 5-int arrays, three int16 masks + three bools
    tflm_opdata = {"STRIDED_SLICE": "c" "iiiii" "c" "iiiii" "c" "iiiii" "hbhbhb"}
    tflm_options = {"STRIDED_SLICE": 24}
    #: the copy moves elements of any width (int32 in the audio front end's tail)
    activation_dtypes = ("int8", "int32")

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 4, 4, required=4)
        x, out = ins[0], outs[0]
        d.need(x.dtype == out.dtype, f"input {x.dtype} and output {out.dtype} types differ")
        begin, end, strides = (_ints(t, w) for t, w in zip(ins[1:], ("begin", "end",
                                                                      "strides"), strict=True))
        rank = len(x.shape)
        d.need(1 <= rank <= 4, f"input has rank {rank}; TFLM's STRIDED_SLICE takes 1..4")
        d.need(len(begin) == len(end) == len(strides) == rank,
               f"begin/end/strides need {rank} entries each")
        d.need(all(s != 0 for s in strides), "stride 0")
        masks = [_scalar_opt(opts, k) for k in range(5)]
        d.need(masks[2] == 0 and masks[3] == 0,
               "ellipsis_mask and new_axis_mask are not supported (TFLM ignores them)")
        d.need(not (opts and opts.scalar(5, "bool", False)),
               "offset=True is not supported (TFLM ignores it)")
        axes = strided_slice_axes(x.shape, begin, end, strides, masks[0], masks[1], masks[4])
        want = tuple(len(range(a, b, s)) for a, b, s, shrink in axes if not shrink)
        d.need(all(a >= 0 and a < n for (a, _, _, shrink), n in zip(axes, x.shape,
                                                                     strict=True) if shrink),
               "a shrunk axis index is out of range")
        d.need(all(s > 0 for _, _, s, shrink in axes if shrink),
               "a shrunk axis has a negative stride (TFLM then writes nothing: undefined)")
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"axes": tuple(axes)}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        index: list[int | slice] = []
        for start, stop, s, shrink in op.attrs["axes"]:
            index.append(start if shrink else slice(start, None if stop < 0 else stop, s))
        view = index_array(_in_shape(graph, op))[tuple(index)]
        return CopyParams((from_views(0, 0, view, index_array(_out_shape(graph, op))),))


@register
class Split(DataMovement):
    """SPLIT (inputs: axis, tensor) into ``num_splits`` equal parts; SPLIT_V (inputs:
    tensor, size_splits with at most one −1, axis)."""

    kinds = ("SPLIT", "SPLIT_V")
    options_type = {"SPLIT": 35, "SPLIT_V": 79}
    tflm_opdata = {"SPLIT": "", "SPLIT_V": ""}
    tflm_options = {"SPLIT": 4, "SPLIT_V": 4}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        if kind == "SPLIT":
            d.need(len(ins) == 2 and all(t is not None for t in ins), "expects 2 inputs")
            axis_t, x = ins
        else:
            d.need(len(ins) == 3 and all(t is not None for t in ins), "expects 3 inputs")
            x, axis_t = ins[0], ins[2]
        axes = _ints(axis_t, "axis")
        d.need(len(axes) == 1, "axis must be a single value")
        axis = _axis(axes[0], len(x.shape))
        dim = x.shape[axis]
        if kind == "SPLIT":
            n = _scalar_opt(opts, 0, len(outs))
            d.need(n >= 1 and dim % n == 0, f"cannot split {dim} into {n} equal parts")
            sizes = [dim // n] * n
        else:
            sizes = _ints(ins[1], "size_splits")
            d.need(sum(1 for s in sizes if s == -1) <= 1 and all(s >= -1 for s in sizes),
                   f"bad size_splits {sizes}")
            if -1 in sizes:
                sizes[sizes.index(-1)] = dim - sum(s for s in sizes if s != -1)
            d.need(sum(sizes) == dim and min(sizes) >= 0,
                   f"size_splits {sizes} do not add up to {dim}")
        _outs(outs, len(sizes))
        for t, n in zip(outs, sizes, strict=True):
            want = x.shape[:axis] + (n,) + x.shape[axis + 1:]
            d.need(t.shape == want, f"output shape {t.shape} should be {want}")
        return {"axis": axis, "sizes": tuple(sizes)}

    def inplace_source(self, op: Op) -> int:
        return 1 if op.kind == "SPLIT" else 0

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        return _parts(op, graph, self.inplace_source(op), op.attrs["axis"],
                      list(op.attrs["sizes"]))


@register
class Pack(DataMovement):
    """PACK: N same-shape inputs stacked along a new ``axis``."""

    kinds = ("PACK",)
    options_type = {"PACK": 59}
    tflm_opdata = {"PACK": ""}
    tflm_options = {"PACK": 8}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.need(len(ins) >= 1 and all(t is not None for t in ins), "needs inputs")
        _outs(outs, 1)
        shape = ins[0].shape
        d.need(all(t.shape == shape for t in ins), "inputs differ in shape")
        d.need(_scalar_opt(opts, 0, len(ins)) == len(ins),
               f"values_count does not match the {len(ins)} inputs")
        axis = _axis(_scalar_opt(opts, 1), len(shape) + 1)
        want = shape[:axis] + (len(ins),) + shape[axis:]
        d.need(outs[0].shape == want, f"output shape {outs[0].shape} should be {want}")
        return {"axis": axis}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        out = index_array(_out_shape(graph, op))
        axis = op.attrs["axis"]
        return CopyParams(tuple(
            from_views(k, 0, index_array(_in_shape(graph, op, k)),
                       out[(slice(None),) * axis + (k,)]) for k in range(len(op.inputs))))


@register
class Unpack(DataMovement):
    """UNPACK: ``num`` outputs, the slices of ``axis``."""

    kinds = ("UNPACK",)
    options_type = {"UNPACK": 64}
    tflm_opdata = {"UNPACK": ""}
    tflm_options = {"UNPACK": 8}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.need(len(ins) == 1 and ins[0] is not None, "expects 1 input")
        x = ins[0]
        axis = _axis(_scalar_opt(opts, 1), len(x.shape))
        n = _scalar_opt(opts, 0, x.shape[axis])
        d.need(n == x.shape[axis], f"num {n} should be dimension {axis} of {x.shape}")
        _outs(outs, n)
        want = x.shape[:axis] + x.shape[axis + 1:]
        d.need(all(t.shape == want for t in outs), f"outputs should have shape {want}")
        return {"axis": axis}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        x = index_array(_in_shape(graph, op))
        axis = op.attrs["axis"]
        return CopyParams(tuple(
            from_views(0, k, x[(slice(None),) * axis + (k,)], index_array(_out_shape(graph, op,
                                                                                      k)))
            for k in range(len(op.outputs))))


@dataclass(frozen=True)
class GatherParams:
    """GATHER with run-time indices: params as (outer, axis_size, inner) elements, ``count``
    indices of ``index_bytes`` (4: int32, 8: int64)."""

    outer: int
    axis_size: int
    inner: int
    count: int
    index_bytes: int


@register
class Gather(DataMovement):
    """GATHER (``batch_dims`` 0). Constant indices: one strided copy per run of consecutive
    indices. Activation indices (an embedding lookup fed by int32/int64 token ids): a row
    gather at run time (``tm_gather``); an index outside the axis — undefined in TFLM, whose
    kernel only DCHECKs it and reads out of bounds — gives a row of zeros here and in C."""

    kinds = ("GATHER",)
    options_type = {"GATHER": 23}
    mixed_types = True  # int32/int64 index activations
    tflm_opdata = {"GATHER": ""}
    tflm_options = {"GATHER": 8}

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        return _output_dims_copy(op, graph)

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, idx_t, out = ins[0], ins[1], outs[0]
        d.need(x.dtype == "int8" and out.dtype == "int8",
               f"GATHER moves int8 tensors, not {x.dtype} → {out.dtype}")
        axis = _axis(_scalar_opt(opts, 0), len(x.shape))
        d.need(_scalar_opt(opts, 1) == 0, "batch_dims other than 0 is not supported")
        want = x.shape[:axis] + tuple(idx_t.shape) + x.shape[axis + 1:]
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        if not idx_t.is_const:
            d.need(idx_t.dtype in ("int32", "int64"),
                   f"indices are {idx_t.dtype}, expected int32 or int64")
            return {"axis": axis}
        idx = _ints(idx_t, "indices")
        d.need(all(0 <= i < x.shape[axis] for i in idx),
               f"an index is out of range for dimension {axis} of {x.shape}")
        return {"axis": axis, "indices": tuple(idx)}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        shape = _in_shape(graph, op)
        axis, idx = op.attrs["axis"], list(op.attrs["indices"])
        x = index_array(shape)
        out = index_array(_out_shape(graph, op)).reshape(shape[:axis] + (len(idx),)
                                                         + shape[axis + 1:])
        pre = (slice(None),) * axis
        copies, k = [], 0
        while k < len(idx):
            run = 1
            while k + run < len(idx) and idx[k + run] == idx[k] + run:
                run += 1
            copies.append(from_views(0, 0, x[pre + (slice(idx[k], idx[k] + run),)],
                                     out[pre + (slice(k, k + run),)]))
            k += run
        return CopyParams(tuple(copies))

    def params(self, op: Op, graph: Graph) -> Any:
        if "indices" in op.attrs:
            return self.copies(op, graph)
        shape, axis = _in_shape(graph, op), op.attrs["axis"]
        idx = graph.tensors[op.inputs[1]]
        return GatherParams(int(np.prod(shape[:axis], dtype=np.int64)), shape[axis],
                            int(np.prod(shape[axis + 1:], dtype=np.int64)), idx.size,
                            4 if idx.dtype == "int32" else 8)

    def inplace(self, op: Op, graph: Graph) -> bool:
        return "indices" in op.attrs and super().inplace(op, graph)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        if "indices" in op.attrs:
            return super().run(op, graph, inputs, pad)
        p = self.params(op, graph)
        x, idx = np.asarray(inputs[0]), np.asarray(inputs[1]).astype(np.int64).ravel()
        rows = x.reshape(p.outer, p.axis_size, p.inner)
        valid = (idx >= 0) & (idx < p.axis_size)
        out = np.zeros((p.outer, p.count, p.inner), np.int8)
        out[:, valid, :] = rows[:, idx[valid], :]
        return [out.reshape(graph.tensors[op.outputs[0]].shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        if "indices" in op.attrs:
            return super().emit(unit, op, step, i)
        from tinymcu.mcu_runtime.ops.copy.emit import emit_gather
        return emit_gather(unit, op, step, i)


@register
class Tile(DataMovement):
    """TILE with constant multiples: the input broadcast over interleaved repeat axes.
    TFLM has no TILE kernel: checked against TFLite's BUILTIN_REF."""

    kinds = ("TILE",)

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, out = ins[0], outs[0]
        mult = _ints(ins[1], "multiples")
        d.need(len(mult) == len(x.shape) and min(mult, default=1) >= 1,
               f"multiples {mult} do not fit input {x.shape}")
        want = tuple(n * m for n, m in zip(x.shape, mult, strict=True))
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"multiples": tuple(mult)}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        shape, mult = _in_shape(graph, op), op.attrs["multiples"]
        inter = tuple(v for pair in zip(mult, shape, strict=True) for v in pair)
        src = index_array(shape).reshape(tuple(v for n in shape for v in (1, n)))
        dst = index_array(_out_shape(graph, op)).reshape(inter)
        return CopyParams((from_views(0, 0, src, dst),))


@register
class DepthSpace(DataMovement):
    """DEPTH_TO_SPACE and SPACE_TO_DEPTH (NHWC, ``block_size``): a 6-axis permuted copy."""

    kinds = ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")
    options_type = {"DEPTH_TO_SPACE": 94, "SPACE_TO_DEPTH": 19}
    tflm_opdata = {"DEPTH_TO_SPACE": "", "SPACE_TO_DEPTH": ""}
    tflm_options = {"DEPTH_TO_SPACE": 4, "SPACE_TO_DEPTH": 4}

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        return _output_dims_copy(op, graph)

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 1, 1)
        x, out = ins[0], outs[0]
        d.rank(x, 4, "input")
        b = d.positive(opts, 0, "block_size")
        n, h, w, c = x.shape
        if kind == "DEPTH_TO_SPACE":
            d.need(c % (b * b) == 0, f"{c} channels are not a multiple of {b}x{b}")
            want = (n, h * b, w * b, c // (b * b))
        else:
            d.need(h % b == 0 and w % b == 0, f"{h}x{w} is not a multiple of {b}")
            want = (n, h // b, w // b, c * b * b)
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"block_size": b}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        b = op.attrs["block_size"]
        if op.kind == "DEPTH_TO_SPACE":
            n, h, w, c = _in_shape(graph, op)
            src = index_array((n, h, w, c)).reshape(n, h, w, b, b, c // (b * b))
            src = src.transpose(0, 1, 3, 2, 4, 5)
            dst = index_array(_out_shape(graph, op)).reshape(n, h, b, w, b, c // (b * b))
        else:
            n, h, w, c = _out_shape(graph, op)
            src = index_array(_in_shape(graph, op)).reshape(n, h, b, w, b, c // (b * b))
            src = src.transpose(0, 1, 3, 2, 4, 5)
            dst = index_array((n, h, w, c)).reshape(n, h, w, b, b, c // (b * b))
        return CopyParams((from_views(0, 0, src, dst),))


def _block_range(n_in: int, n_out: int, block: int, shift: int) -> tuple[int, int]:
    """[lo, hi) of input positions i with 0 <= i·block + shift < n_out (and i < n_in)."""
    lo = max(0, -(shift // block))  # ceil(-shift / block)
    hi = min(n_in, (n_out - 1 - shift) // block + 1)
    return lo, max(lo, hi)


def _spatial(x: Tensor, block: list[int], what: str) -> None:
    d.need(len(x.shape) in (3, 4), f"{what} input has rank {len(x.shape)}; TFLM takes 3 or 4")
    d.need(len(block) == len(x.shape) - 2 and min(block) >= 1,
           f"block_shape {block} does not fit input {x.shape}")


@register
class BatchSpace(DataMovement):
    """BATCH_TO_SPACE_ND (crops) and SPACE_TO_BATCH_ND (paddings) on 3-D (N, H, C) or 4-D
    (N, H, W, C) tensors: one strided copy per block offset.

    SPACE_TO_BATCH_ND pads with the output zero point, as TFLite does (and requires equal
    input and output zero points, as TFLite's Prepare does). TFLM pads with
    ``SpaceToBatchParams.output_offset``, which its Prepare never sets: whatever bytes the
    arena held, so its padded elements are undefined; the copied ones match it."""

    kinds = ("BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND")
    tflm_opdata = {"BATCH_TO_SPACE_ND": "", "SPACE_TO_BATCH_ND": "i"}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 3, 3, required=3)
        x, out = ins[0], outs[0]
        block = _ints(ins[1], "block_shape")
        _spatial(x, block, kind)
        edges = _ints(ins[2], "crops" if kind == "BATCH_TO_SPACE_ND" else "paddings")
        d.need(len(edges) == 2 * len(block) and min(edges, default=0) >= 0,
               f"need {len(block)} non-negative (before, after) pairs")
        spatial = x.shape[1:-1]
        prod = int(np.prod(block))
        if kind == "BATCH_TO_SPACE_ND":
            d.need(x.shape[0] % prod == 0, f"batch {x.shape[0]} is not a multiple of {prod}")
            sizes = [s * b - edges[2 * k] - edges[2 * k + 1]
                     for k, (s, b) in enumerate(zip(spatial, block, strict=True))]
            d.need(min(sizes) >= 1, "crops remove everything")
            want = (x.shape[0] // prod, *sizes, x.shape[-1])
        else:
            d.need(x.quant is not None and out.quant is not None
                   and int(x.quant.zero_point[0]) == int(out.quant.zero_point[0]),
                   "input and output zero points differ (TFLite requires them equal)")
            padded = [s + edges[2 * k] + edges[2 * k + 1] for k, s in enumerate(spatial)]
            d.need(all(p % b == 0 for p, b in zip(padded, block, strict=True)),
                   f"padded size {padded} is not a multiple of block_shape {block}")
            want = (x.shape[0] * prod, *(p // b for p, b in zip(padded, block, strict=True)),
                    x.shape[-1])
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"block": tuple(block), "edges": tuple(edges)}

    def copies(self, op: Op, graph: Graph) -> CopyParams:
        block, edges = list(op.attrs["block"]), list(op.attrs["edges"])
        xs, os_ = _in_shape(graph, op), _out_shape(graph, op)
        if len(xs) == 3:  # (N, H, C) as (N, H, 1, C)
            xs, os_ = (xs[0], xs[1], 1, xs[2]), (os_[0], os_[1], 1, os_[2])
            block, edges = [block[0], 1], [edges[0], edges[1], 0, 0]
        x, out = index_array(xs), index_array(os_)
        bh, bw = block
        copies = []
        to_space = op.kind == "BATCH_TO_SPACE_ND"
        n = os_[0] if to_space else xs[0]
        for by in range(bh):
            for bx in range(bw):
                blk = slice((by * bw + bx) * n, (by * bw + bx + 1) * n)
                if to_space:  # output row = input row * bh + by - crop_top
                    y0, y1 = _block_range(xs[1], os_[1], bh, by - edges[0])
                    x0, x1 = _block_range(xs[2], os_[2], bw, bx - edges[2])
                    if y1 <= y0 or x1 <= x0:
                        continue
                    src = x[blk, y0:y1, x0:x1, :]
                    dst = out[:, y0 * bh + by - edges[0]::bh, x0 * bw + bx - edges[2]::bw, :]
                    copies.append(from_views(0, 0, src, dst[:, :y1 - y0, :x1 - x0, :]))
                else:  # input row = output row * bh + by - pad_top
                    y0, y1 = _block_range(os_[1], xs[1], bh, by - edges[0])
                    x0, x1 = _block_range(os_[2], xs[2], bw, bx - edges[2])
                    if y1 <= y0 or x1 <= x0:
                        continue
                    src = x[:, y0 * bh + by - edges[0]::bh, x0 * bw + bx - edges[2]::bw, :]
                    copies.append(from_views(0, 0, src[:, :y1 - y0, :x1 - x0, :],
                                             out[blk, y0:y1, x0:x1, :]))
        fills: tuple[tuple[int, int], ...] = ()
        if not to_space:
            fills = ((0, qparams(graph, op.outputs[0])[1]),)
        return CopyParams(tuple(copies), fills)
