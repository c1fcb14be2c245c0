"""MEAN on int8 — TFLM's reduce kernel (``EvalMeanHelper`` → ``EvalIntegerMean`` →
``reference_ops::QuantizedMeanOrSum``), reproduced exactly.

TFLM sends every int8 MEAN through one rescaling path, whatever the axes, ``keep_dims`` or
quantization: the 1/count factor is folded into the fixed-point multiplier of ``s_in/s_out``
(``(m << k) / count`` with ``k = floor(log2(count))``, capped at 32 and at ``31 + shift``),
then ``sum(q) - zp_in·count`` is rescaled once and ``zp_out`` added. TFLite's older
``reference_ops::Mean`` (raw sum divided by the count, used when input and output
quantization are equal) is *not* what TFLM runs: it is off by one LSB on a large share of
elements (checked against the tflite_micro interpreter in tests/test_exactness.py).

Our C runtime keeps one int32 accumulator per output element in scratch for the general
reduction (as TFLM does); the global-average-pool case accumulates one channel at a time
in a register and needs none.
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
from tinymcu.mcu_runtime.ops.mean import kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier


@dataclass(frozen=True)
class MeanParams:
    """``sum - in_zp·count`` is rescaled by (``mult``, ``shift``), 1/count folded in."""

    axes: tuple[int, ...]
    keep_dims: bool
    out_shape: tuple[int, ...]
    count: int
    mult: int
    shift: int
    in_zp: int
    out_zp: int


def mean_axes(op: Op, graph: Graph) -> tuple[int, ...]:
    """The reduced axes, non-negative and without repeats, in the file's order."""
    t = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    data = t.data if t is not None and t.data is not None else op.attrs.get("axis")
    rank = len(graph.tensors[op.inputs[0]].shape)
    out: list[int] = []
    for a in np.atleast_1d(np.asarray(data, dtype=np.int64)).tolist():
        a = a + rank if a < 0 else a
        if a not in out:
            out.append(a)
    return tuple(out)


def count_multiplier(m: int, shift: int, count: int) -> tuple[int, int]:
    """Fold 1/count into (m, shift) as QuantizedMeanOrSum does."""
    sh = min(count.bit_length() - 1, 32, 31 + shift)
    return (m << sh) // count, shift - sh


def _special_4d(op: Op, graph: Graph, axes: tuple[int, ...]) -> bool:
    return (len(graph.tensors[op.inputs[0]].shape) == 4 and len(axes) == 2
            and set(axes) == {1, 2} and bool(op.attrs.get("keep_dims", False)))


@register
class Mean(OpDef):
    kinds = ("MEAN",)
    options_type = {"MEAN": 27}
    tflm_opdata = {"MEAN": "i" * 11}  # OpDataReduce
    tflm_options = {"MEAN": 1}  # TfLiteReducerParams: bool keep_dims
    header = "tm_mean.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, out = ins[0], outs[0]
        axis = d.axes(d.const(ins[1], "axis"), len(x.shape), "axis")
        keep = bool(opts.scalar(0, "bool", False)) if opts else False
        want = tuple(1 if i in axis else s for i, s in enumerate(x.shape)) if keep else tuple(
            s for i, s in enumerate(x.shape) if i not in axis)
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"axis": axis, "keep_dims": keep}

    def params(self, op: Op, graph: Graph) -> MeanParams:
        axes = mean_axes(op, graph)
        shape = graph.tensors[op.inputs[0]].shape
        (s_in, zp_in), (s_out, zp_out) = qparams(graph, op.inputs[0]), qparams(graph,
                                                                                op.outputs[0])
        count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
        keep = bool(op.attrs.get("keep_dims", False))
        out_shape = (tuple(1 if i in axes else s for i, s in enumerate(shape)) if keep
                     else tuple(s for i, s in enumerate(shape) if i not in axes))
        mult, shift = count_multiplier(*quantize_multiplier(s_in / s_out), count)
        return MeanParams(axes, keep, out_shape, count, mult, shift, zp_in, zp_out)

    def macs(self, op: Op, graph: Graph) -> int:
        return graph.tensors[op.inputs[0]].size

    def scratch_bytes(self, op: Op, graph: Graph, region: Any = None) -> int:
        # tm_mean_hw (batch 1) sums in a register; tm_reduce keeps int32 sums in scratch
        if (_special_4d(op, graph, mean_axes(op, graph))
                and graph.tensors[op.inputs[0]].shape[0] == 1):
            return 0
        return 4 * graph.tensors[op.outputs[0]].size

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        """int32 sums, then index and resolved-axis work arrays."""
        out, inp, axes = (graph.tensors[t] for t in (op.outputs[0], *op.inputs[:2]))
        return [4 * out.size, 4 * len(inp.shape), 4 * axes.size]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.mean(self.params(op, graph), inputs[0])]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.mean.emit import emit_mean
        return emit_mean(unit, op, step, i)
