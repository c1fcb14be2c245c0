"""REDUCE_MAX, REDUCE_MIN and SUM on int8 over any axes, as TFLM's reduce kernels compute
them (``reduce_common.cc``).

* REDUCE_MAX/REDUCE_MIN (``EvalMaxHelper``/``EvalMinHelper`` → ``ReduceGeneric``): the
  extreme stored code, starting from -128/127. TFLM refuses int8 inputs whose scale or
  zero point differ from the output's (no requantization exists on that path), and so
  does ``decode``.
* SUM (``EvalSumHelper`` → ``QuantizedMeanOrSum`` with ``compute_sum``): MEAN's rescaling
  path without the 1/count fold: ``sum(q) - zp_in·count`` rescaled once by ``s_in/s_out``
  (double precision ``QuantizeMultiplier``) plus ``zp_out``, saturated. It reuses the
  MEAN folder's kernel and parameters (``ops.mean``).

The C kernel (``tm_reduce``, shared with MEAN over axes other than H and W) walks the
whole input once in row-major order; SUM/MEAN keep one int32 accumulator per output
element in scratch (as TFLM does), MAX/MIN update the output in place of an accumulator.
Not tileable: an output element depends on a whole axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.mean import MeanParams, mean_axes
from tinymcu.mcu_runtime.ops.mean import kernel as mean_kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier


def reduce_decode(kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
    """Input, constant axes and ``keep_dims`` (ReducerOptions slot 0) giving the output."""
    d.arity(ins, outs, 2, 2, required=2)
    x, out = ins[0], outs[0]
    axis = d.axes(d.const(ins[1], "axis"), len(x.shape), "axis")
    keep = bool(opts.scalar(0, "bool", False)) if opts else False
    want = tuple(1 if i in axis else s for i, s in enumerate(x.shape)) if keep else tuple(
        s for i, s in enumerate(x.shape) if i not in axis)
    d.need(out.shape == want, f"output shape {out.shape} should be {want}")
    return {"axis": axis, "keep_dims": keep}


def sum_params(op: Op, graph: Graph) -> MeanParams:
    """MEAN's parameters with the multiplier of ``s_in/s_out`` alone (no 1/count)."""
    axes = mean_axes(op, graph)
    shape = graph.tensors[op.inputs[0]].shape
    (s_in, zp_in), (s_out, zp_out) = qparams(graph, op.inputs[0]), qparams(graph,
                                                                            op.outputs[0])
    count = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    mult, shift = quantize_multiplier(s_in / s_out)
    return MeanParams(axes, bool(op.attrs.get("keep_dims", False)),
                      graph.tensors[op.outputs[0]].shape, count, mult, shift, zp_in, zp_out)


@register
class Reduce(OpDef):
    kinds = ("REDUCE_MAX", "REDUCE_MIN", "SUM")
    options_type = {"REDUCE_MAX": 27, "REDUCE_MIN": 27, "SUM": 27}
    untileable = "an output element depends on a whole reduced axis"
    tflm_opdata = {k: "i" * 11 for k in kinds}  # OpDataReduce
    tflm_options = {k: 1 for k in kinds}  # TfLiteReducerParams: bool keep_dims
    header = "tm_reduce.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        attrs = reduce_decode(kind, ins, outs, opts)
        if kind != "SUM" and ins[0].dtype == "int8":
            qi, qo = ins[0].quant, outs[0].quant
            same = (qi is None) == (qo is None) and (qi is None or (
                np.array_equal(np.float32(qi.scale), np.float32(qo.scale))
                and np.array_equal(qi.zero_point, qo.zero_point)))
            d.need(same, f"int8 {kind} needs the input's scale and zero point on the output "
                         f"(TFLM requantizes nothing here)")
        return attrs

    def params(self, op: Op, graph: Graph) -> MeanParams:
        return sum_params(op, graph)

    def macs(self, op: Op, graph: Graph) -> int:
        return graph.tensors[op.inputs[0]].size

    def scratch_bytes(self, op: Op, graph: Graph, region: Any = None) -> int:
        return 4 * graph.tensors[op.outputs[0]].size if op.kind == "SUM" else 0

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        """SUM: int32 sums, then index and resolved-axis arrays; MAX/MIN: the last two."""
        out, inp, axes = (graph.tensors[t] for t in (op.outputs[0], *op.inputs[:2]))
        work = [4 * len(inp.shape), 4 * axes.size]
        return [4 * out.size, *work] if op.kind == "SUM" else work

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        p = self.params(op, graph)
        if op.kind == "SUM":
            return [mean_kernel.mean(p, x)]
        f = np.max if op.kind == "REDUCE_MAX" else np.min
        return [f(x, axis=p.axes).reshape(p.out_shape) if p.axes else x.reshape(p.out_shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.reduce.emit import emit_reduce
        return emit_reduce(unit, op, step, i)
