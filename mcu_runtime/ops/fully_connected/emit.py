"""C emitter of FULLY_CONNECTED (``tm_fully_connected``)."""

from __future__ import annotations

import numpy as np

from tinymcu.mcu_runtime.codegen.emitters import (
    CUnit,
    c_struct,
    check_mult,
    check_shift,
    mask_field,
)
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.conv.emit import pair_rows, requant_bounded
from tinymcu.mcu_runtime.schedule import Step


def emit_fully_connected(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph

    def fields() -> str:
        p = get(op.kind).params(op, g)
        check_shift(p.shift, f"op {op.index} FULLY_CONNECTED")
        check_mult(p.mult, f"op {op.index} FULLY_CONNECTED")
        tag = f"op{op.index}"
        extra: dict[str, str] = {}
        wts = np.asarray(g.tensors[op.inputs[1]].data)
        fmt = unit.filter_format(op)
        bias = g.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 \
            else None
        w, mask, b = "NULL", None, "NULL"
        if fmt == "lists":  # the sparse GEMM (tm_conv.h); bias and zero point in kbias
            assert p.kernel_bias is not None
            extra = {**unit.sparse_rows(tag, wts),
                     "kbias": unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)}
        elif fmt == "dense" and p.kernel_bias is not None:  # the GEMM (tm_conv.h)
            extra = {"wpairs": unit.array(f"{tag}_wpairs", "int8_t", pair_rows(wts)),
                     "kbias": unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)}
        else:  # the bitmask (weights zero point 0), or dense weights with a zero point
            w, mask = unit.filter_arrays(op.inputs[1], tag, wts) if fmt == "mask" else (
                unit.tensor_array(op.inputs[1], f"{tag}_weights"), None)
            if mask is not None and bias is not None:  # the bitmask GEMM: kbias, same bytes
                assert p.kernel_bias is not None
                extra["kbias"] = unit.array(f"{tag}_kbias", "int32_t", p.kernel_bias)
            else:
                b = unit.tensor_array(op.inputs[2] if len(op.inputs) > 2 else -1, f"{tag}_bias")
        if "kbias" in extra and requant_bounded(wts.T, bias, p.shift, sparse=fmt != "dense"):
            extra["fast_rq"] = "1"
        if fmt != "dense":
            unit.note_sparse_form("fast_rq" in extra, p.act_min, p.act_max)
        m = unit.array(f"{tag}_mult", "int32_t", p.mult)
        s = unit.array(f"{tag}_shift", "int8_t", p.shift)
        return c_struct(weights=w, bias=b, mult=m, shift=s, in_n=p.depth, out_n=p.units,
                        batches=p.batches, in_zp=p.in_zp, w_zp=p.w_zp, out_zp=p.out_zp,
                        act_min=p.act_min, act_max=p.act_max, **mask_field(mask), **extra)

    p = unit.op_params(op, "fc", "tm_fc_params", fields)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    fmt = unit.filter_format(op)
    has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
    kernel = "tm_fully_connected_sparse" if fmt == "lists" or (fmt == "mask" and has_bias) \
        else "tm_fully_connected"
    return [f"{kernel}({p}, (const int8_t *)(tm_arena + {src.offset}), "
            f"(int8_t *)(tm_arena + {dst.offset}));"]
