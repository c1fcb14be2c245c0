"""C emitter of CONV_2D (``tm_conv2d`` in ``tm_conv.h``); the parameter struct is shared with
the depthwise and fused expand + depthwise emitters."""

from __future__ import annotations

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import geometry, ops
from tinymcu.mcu_runtime.codegen.emitters import (
    CUnit,
    c_struct,
    check_mult,
    check_shift,
    mask_field,
    require_maps,
    window_pad,
)
from tinymcu.mcu_runtime.codegen.sparse import filter_rows
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops.conv import conv_params, runs_as_gemm
from tinymcu.mcu_runtime.schedule import Step


def conv_fields(unit: CUnit, op: Op, tag: str, gemm: bool = False,
                kbias: bool = False) -> str:
    """The ``tm_conv_params`` initializer of a conv or depthwise op (its ConvParams plus the
    filter, bias, multiplier and shift arrays). ``gemm``: a CONV_2D run by
    ``tm_conv2d_gemm`` when its filter is dense, whose filter is then the paired layout plus
    the folded bias instead of the bias; ``kbias``: the folded bias next to the plain
    filter (the fused expand's dot products). A sparse unit stores the filter in the format
    ``CUnit.filter_format`` gives: dense, the bitmask, or per-row non-zero lists (CONV_2D;
    with the folded bias, run by the same GEMM)."""
    g = unit.graph
    p = conv_params(op, g)
    check_shift(p.shift, f"op {op.index} {op.kind}")
    check_mult(p.mult, f"op {op.index} {op.kind}")
    fmt = unit.filter_format(op)
    rows = filter_rows(op, g)
    extra: dict[str, str] = {}
    w, b = "NULL", "NULL"
    if fmt == "lists":  # `filter` and `bias` stay NULL
        assert p.kernel_bias is not None
        extra = {**unit.sparse_rows(tag, rows),
                 "kbias": unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)}
    elif fmt == "dense" and gemm:  # the GEMM's paired layout; `filter` and `bias` NULL
        assert p.kernel_bias is not None
        extra = {"wpairs": unit.array(f"{tag}_wpairs", "int8_t", pair_rows(rows)),
                 "kbias": unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)}
    else:
        if fmt == "mask":
            w, mask = unit.filter_arrays(op.inputs[1], tag, rows)
            extra = mask_field(mask)
            has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
            if op.kind == "CONV_2D" and not kbias and has_bias:  # the bitmask GEMM
                assert p.kernel_bias is not None  # kbias replaces the bias: same bytes
                extra["kbias"] = unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)
        else:
            w = unit.tensor_array(op.inputs[1], f"{tag}_filter")
            if kbias and p.kernel_bias is not None:
                extra["kbias"] = unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)
        if "kbias" not in extra or kbias:
            b = unit.tensor_array(op.inputs[2] if len(op.inputs) > 2 else -1, f"{tag}_bias")
    m = unit.array(f"{tag}_mult", "int32_t", p.mult)
    s = unit.array(f"{tag}_shift", "int8_t", p.shift)
    bias = g.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if requant_bounded(np.asarray(g.tensors[op.inputs[1]].data).reshape(-1, p.mult.size)
                       if op.kind == "DEPTHWISE_CONV_2D" else
                       np.asarray(g.tensors[op.inputs[1]].data).reshape(p.mult.size, -1).T,
                       bias, p.shift, sparse=fmt != "dense"):
        extra["fast_rq"] = "1"
    if fmt != "dense":
        unit.note_sparse_form("fast_rq" in extra, p.act_min, p.act_max)
    return c_struct(filter=w, bias=b, mult=m, shift=s, kh=p.kernel[0], kw=p.kernel[1],
                    sh=p.stride[0], sw=p.stride[1], dh=p.dilation[0], dw=p.dilation[1],
                    depth_multiplier=p.depth_multiplier, in_zp=p.in_zp, out_zp=p.out_zp,
                    act_min=p.act_min, act_max=p.act_max, **extra)


#: the longest bitmask row the sparse kernels decode into a list (tm_conv.h's TM_MASK_ROW)
MASK_ROW = 128

#: the short requantization's accumulator bound (tm_rq_out_fast): |acc| < 2^29
FAST_RQ_BOUND = 1 << 29


#: the sparse kernels' fast forms fold the output zero point into the rounding constant,
#: which stays within int32 for shifts down to this (tm_conv.h, tm_rq_fast_of)
SPARSE_MIN_SHIFT = -23


def requant_bounded(taps: np.ndarray, bias: np.ndarray | None, shift: np.ndarray,
                    sparse: bool = False) -> bool:
    """True when ``tm_rq_out_fast`` is exact for every output of the op: ``taps`` is
    (taps, channels) of int8 weights; every accumulator is at most Σ|w| · 255 + |bias| (an
    input minus its zero point lies in [-255, 255]) and must stay below 2^29, and every
    shift must be <= -1 (a right shift, no left shift). A ``sparse`` filter's fast forms
    also need every shift >= :data:`SPARSE_MIN_SHIFT`."""
    worst = np.abs(taps.astype(np.int64)).sum(axis=0) * 255
    if bias is not None:
        worst = worst + np.abs(np.asarray(bias, np.int64))
    shifts = np.asarray(shift)
    return bool(worst.max() < FAST_RQ_BOUND and shifts.max() <= -1
                and (not sparse or shifts.min() >= SPARSE_MIN_SHIFT))


def pair_rows(rows: np.ndarray) -> np.ndarray:
    """An (O, K) filter in the GEMM's paired layout (``tm_conv.h``): rows 2j and 2j + 1
    interleaved in groups of 4 values, then row 2j's K % 4 tail, then row 2j + 1's; an odd
    last row as it is. Same bytes, reordered once here, so the kernel walks a row pair with
    one pointer and one word load per 4 taps of each row."""
    o, k = rows.shape
    k4 = k // 4 * 4
    parts = []
    for j in range(0, o - 1, 2):
        a, b = rows[j], rows[j + 1]
        parts += [np.stack([a[:k4].reshape(-1, 4), b[:k4].reshape(-1, 4)], axis=1).ravel(),
                  a[k4:], b[k4:]]
    if o % 2:
        parts.append(rows[-1])
    return np.concatenate(parts).astype(np.int8)


def emit_conv16(unit: CUnit, op: Op, step: Step) -> list[str]:
    """A 16x8 conv (``tm_conv2d_s16``) on whole int16 batch-1 maps."""
    g = unit.graph
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} CONV_2D 16x8: the C runtime runs it on whole "
                           f"tensors (layer schedule)")
    require_maps(op, g)
    x, y = g.tensors[op.inputs[0]].shape, g.tensors[op.outputs[0]].shape
    p = conv_params(op, g)
    check_shift(p.shift, f"op {op.index} {op.kind}")
    pad = geometry.same_valid_pad(op, (x[1], x[2]), p.kernel)
    tag = f"op{op.index}"

    def fields() -> str:
        bias = unit.tensor_array(op.inputs[2] if len(op.inputs) > 2 else -1, f"{tag}_bias")
        return c_struct(filter=unit.tensor_array(op.inputs[1], f"{tag}_filter"), bias=bias,
                        mult=unit.array(f"{tag}_mult", "int32_t", p.mult),
                        shift=unit.array(f"{tag}_shift", "int8_t", p.shift),
                        kh=p.kernel[0], kw=p.kernel[1], sh=p.stride[0], sw=p.stride[1],
                        dh=p.dilation[0], dw=p.dilation[1], in_h=x[1], in_w=x[2], in_c=x[3],
                        out_h=y[1], out_w=y[2], out_c=y[3], pad_top=pad[0], pad_left=pad[2],
                        act_min=p.act_min, act_max=p.act_max)

    ref = unit.op_params(op, "conv16", "tm_conv16_params", fields)
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_conv2d_s16({ref}, (const int16_t *)(void *)(tm_arena + {src}), "
            f"(int16_t *)(void *)(tm_arena + {dst}));"]


def emit_conv(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    if unit.graph.tensors[op.inputs[0]].dtype == "int16":
        return emit_conv16(unit, op, step)
    require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "conv", "tm_conv_params",
                       lambda: conv_fields(unit, op, f"op{op.index}",
                                           runs_as_gemm(op, unit.graph)))
    scratch = unit.scratch(i) or "NULL"  # the im2col buffer, when planned
    fmt = unit.filter_format(op)
    if fmt == "dense":
        return [f"tm_conv2d({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]}, "
                f"{scratch});"]
    # the sparse kernels take the im2col columns the scratch holds (a block when planned)
    flt = unit.graph.tensors[op.inputs[1]].shape
    cols = ops.step_scratch(unit.graph, step) // int(flt[1] * flt[2] * flt[3])
    unpadded_1x1 = tuple(flt[1:3]) == (1, 1) and pad[0] == pad[2] == 0
    if fmt == "lists" and cols == 0 and not unpadded_1x1:
        unit.note_sparse_taps(filter_rows(op, unit.graph), True)  # the rows' tap tables
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0  # a bitmask conv's kbias (fields)
    rows = fmt == "mask" and has_bias and int(np.prod(flt[1:])) <= MASK_ROW and (
        cols > 0 or unpadded_1x1)  # decoded rows over pixels or im2col blocks only
    kernel = "tm_conv2d_lists" if fmt == "lists" else \
        "tm_conv2d_mask_rows" if rows else "tm_conv2d_masked"
    return [f"{kernel}({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]}, {scratch}, "
            f"{cols});"]
