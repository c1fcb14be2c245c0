"""BATCH_MATMUL int8 (TFLM's ``batch_matmul.cc`` and ``reference_ops::BatchMatMul``):
``out[..., a, c] = requant(Σ_k (lhs[..., a, k] − lhs_zp) · (rhs[..., k, c] − rhs_zp))``.

``adj_x``/``adj_y`` transpose the last two axes of an operand; the batch axes (up to three,
ranks 2..5) broadcast where one side has 1. One per-tensor multiplier from
``lhs_scale · rhs_scale / out_scale`` in double, no fused activation (the clamp is the int8
range). Either operand may be a constant (attention weights) or an activation
(``Q·Kᵀ``). TFLM copies a transposed operand into persistent buffers at Eval (lhs when
``adj_x``, rhs unless ``adj_y``); our kernels walk the operands with strides instead and
need no scratch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.batch_matmul import kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier

#: batch axes TFLM's reference kernel handles (operand ranks 2..5)
MAX_BATCH_DIMS = 3


@dataclass(frozen=True)
class BatchMatmulParams:
    """The output's batch dims (padded to three in front), each operand's batch strides in
    elements (0 on a broadcast axis), the matrix sizes, the element strides of the
    (row, depth) walk of lhs and (depth, col) walk of rhs, zero points and requantization."""

    adj_x: bool
    adj_y: bool
    batch: tuple[int, int, int]
    lhs_bstride: tuple[int, int, int]
    rhs_bstride: tuple[int, int, int]
    rows: int
    depth: int
    cols: int
    lhs_strides: tuple[int, int]
    rhs_strides: tuple[int, int]
    lhs_zp: int
    rhs_zp: int
    out_zp: int
    mult: int
    shift: int


def _matrix(shape: tuple[int, ...], adj: bool) -> tuple[int, int]:
    """(rows, cols) of an operand as the product sees it."""
    r, c = shape[-2], shape[-1]
    return (c, r) if adj else (r, c)


def _batch_strides(shape: tuple[int, ...], batch: tuple[int, ...]) -> tuple[int, int, int]:
    """Element strides of the operand's batch axes against the output's ``batch``."""
    lead = (1,) * (len(batch) - (len(shape) - 2)) + tuple(shape[:-2])
    step = shape[-1] * shape[-2]
    strides = [0] * len(batch)
    for k in range(len(batch) - 1, -1, -1):
        strides[k] = step if lead[k] != 1 else 0
        step *= lead[k]
    padded = [0] * (MAX_BATCH_DIMS - len(batch)) + strides
    return padded[0], padded[1], padded[2]


@register
class BatchMatmul(OpDef):
    kinds = ("BATCH_MATMUL",)
    options_type = {"BATCH_MATMUL": 101}
    untileable = "contracts whole rows"
    #: OpDataBatchMatmul: quantization and two transposed-tensor pointers, three bools
    tflm_opdata = {"BATCH_MATMUL": "ppp" "bbb"}
    tflm_options = {"BATCH_MATMUL": 3}
    header = "tm_batch_matmul.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        lhs, rhs, out = ins[0], ins[1], outs[0]
        adj_x = bool(opts.scalar(0, "bool", False)) if opts else False
        adj_y = bool(opts.scalar(1, "bool", False)) if opts else False
        for t, what in ((lhs, "lhs"), (rhs, "rhs")):
            d.need(2 <= len(t.shape) <= 2 + MAX_BATCH_DIMS,
                   f"{what} has shape {t.shape}, expected rank 2..5")
            d.need(t.quant is None or t.quant.scale.size == 1,
                   f"{what} is quantized per channel; BATCH_MATMUL takes per-tensor operands")
        (a, k1), (k2, c) = _matrix(lhs.shape, adj_x), _matrix(rhs.shape, adj_y)
        d.need(k1 == k2, f"lhs {lhs.shape} (adj_x={adj_x}) and rhs {rhs.shape} "
               f"(adj_y={adj_y}) do not agree on the depth")
        rank = max(len(lhs.shape), len(rhs.shape))
        lb = (1,) * (rank - len(lhs.shape)) + lhs.shape[:-2]
        rb = (1,) * (rank - len(rhs.shape)) + rhs.shape[:-2]
        d.need(all(x == y or 1 in (x, y) for x, y in zip(lb, rb, strict=True)),
               f"batch dims of {lhs.shape} and {rhs.shape} do not broadcast")
        want = tuple(max(x, y) for x, y in zip(lb, rb, strict=True)) + (a, c)
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"adj_x": adj_x, "adj_y": adj_y}

    def params(self, op: Op, graph: Graph) -> BatchMatmulParams:
        lhs, rhs, out = (graph.tensors[t].shape for t in (*op.inputs[:2], op.outputs[0]))
        adj_x, adj_y = bool(op.attrs.get("adj_x")), bool(op.attrs.get("adj_y"))
        (rows, depth), (_, cols) = _matrix(lhs, adj_x), _matrix(rhs, adj_y)
        batch = tuple(out[:-2])
        lhs_scale, lhs_zp = qparams(graph, op.inputs[0])
        rhs_scale, rhs_zp = qparams(graph, op.inputs[1])
        out_scale, out_zp = qparams(graph, op.outputs[0])
        mult, shift = quantize_multiplier(lhs_scale * rhs_scale / out_scale)
        padded = (1,) * (MAX_BATCH_DIMS - len(batch)) + batch
        return BatchMatmulParams(
            adj_x, adj_y, (padded[0], padded[1], padded[2]), _batch_strides(lhs, batch),
            _batch_strides(rhs, batch), rows, depth, cols,
            (1, rows) if adj_x else (depth, 1), (1, depth) if adj_y else (cols, 1),
            lhs_zp, rhs_zp, out_zp, mult, shift)

    def macs(self, op: Op, graph: Graph) -> int:
        p = self.params(op, graph)
        return graph.tensors[op.outputs[0]].size * p.depth

    def inplace(self, op: Op, graph: Graph) -> bool:
        return False

    def tflm_persistent(self, op: Op, graph: Graph, pointer_bytes: int) -> list[int]:
        """The quantization struct (7 int32), and for each operand TFLM transposes (lhs when
        ``adj_x``, rhs unless ``adj_y``) a TfLiteEvalTensor, its dims array and its data;
        then the output's writable dims copy (``CreateWritableTensorDimsWithCopy``)."""
        from tinymcu.mcu_runtime.tflm_arena import abi_for, struct_size

        eval_tensor = struct_size("ppi", abi_for(pointer_bytes))
        out = [7 * 4]
        for t, transposed in ((op.inputs[0], bool(op.attrs.get("adj_x"))),
                              (op.inputs[1], not op.attrs.get("adj_y"))):
            if transposed:
                tensor = graph.tensors[t]
                out += [eval_tensor, 4 + 4 * len(tensor.shape), tensor.nbytes]
        return [*out, 4 + 4 * len(graph.tensors[op.outputs[0]].shape)]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.batch_matmul(self.params(op, graph), inputs[0], inputs[1])]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.batch_matmul.emit import emit_batch_matmul
        return emit_batch_matmul(unit, op, step, i)
