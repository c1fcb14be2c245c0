"""C emitter of CONCATENATION: one box copy per input (through a requantizing table where
its quantization differs from the output's)."""

from __future__ import annotations

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import Box, CUnit, copy_box, int8_io
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def _luts(unit: CUnit, op: Op) -> list[str | None]:
    """Per input: a requantizing look-up table where its quantization differs from the
    output's (the emulator's own kernel, run on every int8 value)."""
    g = unit.graph
    d = get(op.kind)
    axis = d.params(op, g).axis
    shape = [1] * len(g.tensors[op.inputs[0]].shape)
    shape[axis] = 256
    probe = np.arange(-128, 128, dtype=np.int8).reshape(shape)
    joined = np.asarray(d.run(op, g, [probe] * len(op.inputs))[0])
    out: list[str | None] = []
    for j, t in enumerate(op.inputs):
        if g.tensors[t].quant == g.tensors[op.outputs[0]].quant:
            out.append(None)
            continue
        part = np.take(joined, range(256 * j, 256 * (j + 1)), axis=axis).ravel()
        out.append(unit.array(f"op{op.index}_lut{j}", "int8_t", part))
    return out


def emit_plain_concat(unit: CUnit, op: Op, step: Step) -> list[str]:
    """Unquantized int32 inputs (constants included): a ``memcpy`` of each input's block
    per outer index."""
    g = unit.graph
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} CONCATENATION of int32 cannot run on a tile")
    out_t = g.tensors[op.outputs[0]]
    axis = get(op.kind).params(op, g).axis
    outer = int(np.prod(out_t.shape[:axis], dtype=np.int64))
    width = out_t.nbytes // out_t.size
    total = int(np.prod(out_t.shape[axis:], dtype=np.int64)) * width
    dst = unit.buffer_offset(step, op.outputs[0])
    lines, at = [], 0
    for k, t in enumerate(op.inputs):
        inner = int(np.prod(g.tensors[t].shape[axis:], dtype=np.int64)) * width
        src = (f"(const uint8_t *){unit.tensor_array(t, f'op{op.index}_in{k}')}"
               if g.tensors[t].is_const else
               f"(const uint8_t *)(tm_arena + {unit.buffer_offset(step, t)})")
        lines.append(f"{{ int32_t o; for (o = 0; o < {outer}; ++o) memcpy(tm_arena + {dst} + "
                     f"{at} + (size_t)o * {total}, {src} + (size_t)o * {inner}, {inner}); }}")
        at += inner
    return lines


def emit_concat(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    if g.tensors[op.outputs[0]].dtype == "int32":
        return emit_plain_concat(unit, op, step)
    int8_io(op, g)
    for t in op.inputs:
        if g.tensors[t].is_const or g.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} CONCATENATION of a constant or non-int8 tensor "
                               f"is not supported by the C runtime")
    out_t = g.tensors[op.outputs[0]]
    rank = len(out_t.shape)
    axis = get(op.kind).params(op, g).axis
    luts = _luts(unit, op)
    lines = []
    if rank == 4 and axis == 3 and out_t.shape[0] == 1:
        dst = unit.out_box(step, op)
        at = 0
        for t, lut in zip(op.inputs, luts, strict=True):
            src = unit.in_box(step, t)
            lines.append(copy_box(unit, src, dst.sub(0, 0, at, src.h, src.w, src.c), lut))
            at += src.c
        return lines
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} CONCATENATION on a tile must be along channels")
    outer = int(np.prod(out_t.shape[:axis], dtype=np.int64))
    total = int(np.prod(out_t.shape[axis:], dtype=np.int64))
    base = unit.buffer_offset(step, op.outputs[0])
    at = 0
    for t, lut in zip(op.inputs, luts, strict=True):
        inner = int(np.prod(g.tensors[t].shape[axis:], dtype=np.int64))
        src = Box(unit.buffer_offset(step, t), outer, 1, inner, inner, inner)
        lines.append(copy_box(unit, src, Box(base + at, outer, 1, inner, inner, total), lut))
        at += inner
    return lines
