"""SOFTMAX on int8 (TFLM's reference integer kernel, gemmlowp fixed point).

The row maximum is subtracted, the differences are scaled by beta·s_in into Q5.26, gemmlowp
``exp_on_negative_values`` is summed in Q12.19 and multiplied by a Newton-Raphson reciprocal;
differences below ``diff_min`` contribute nothing and output -128. In place: each row is
read completely (max and sum) before it is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.activation import input_radius
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.softmax import kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier


@dataclass(frozen=True)
class SoftmaxParams:
    """beta·s_in·2^26 as (``mult``, ``left_shift``), and the smallest difference counted."""

    mult: int
    left_shift: int
    diff_min: int


@register
class Softmax(OpDef):
    kinds = ("SOFTMAX",)
    options_type = {"SOFTMAX": 9}
    tflm_opdata = {"SOFTMAX": "d" "iiiiiii" "ppppp"}  # SoftmaxParams
    tflm_options = {"SOFTMAX": 4}
    untileable = "normalises over its last axis"
    header = "tm_softmax.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.unary(ins, outs, opts)
        if outs[0].dtype == "int16":  # TFLM's int8 → int16 softmax (keyword models)
            q = outs[0].quant
            d.need(ins[0].dtype == "int8" and q is not None
                   and int(q.zero_point.ravel()[0]) == -32768,
                   "an int16 output needs an int8 input and zero point -32768 (TFLM)")
        beta = float(opts.scalar(0, "float32", 0.0)) if opts else 0.0
        d.need(bool(np.isfinite(beta)), f"beta {beta} is not finite")
        return {"beta": beta}

    def params(self, op: Op, graph: Graph) -> SoftmaxParams:
        s_in, _ = qparams(graph, op.inputs[0])
        beta = float(op.attrs.get("beta", 1.0))
        real = min(beta * s_in * float(1 << 26), float((1 << 31) - 1))
        multiplier, left_shift = quantize_multiplier(real)
        return SoftmaxParams(multiplier, left_shift, -input_radius(5, left_shift))

    def inplace(self, op: Op, graph: Graph) -> bool:
        # an int16 output is wider than its input: writing it would overrun unread input
        return graph.tensors[op.outputs[0]].dtype == "int8"

    def own_dtypes(self, op: Op, graph: Graph) -> frozenset[int]:
        out = op.outputs[0]
        return frozenset({out}) if graph.tensors[out].dtype == "int16" else frozenset()

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        if graph.tensors[op.outputs[0]].dtype == "int16":
            x = inputs[0]
            assert x is not None
            return [kernel.softmax(self.params(op, graph), x, out_bits=16)]
        if graph.tensors[op.outputs[0]].dtype != "int8":
            raise TinymcuError(f"unsupported op {op.kind} with "
                               f"{graph.tensors[op.outputs[0]].dtype} output (op {op.index}); "
                               f"only int8 is supported")
        x = inputs[0]
        assert x is not None
        return [kernel.softmax(self.params(op, graph), x)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.softmax.emit import emit_softmax
        return emit_softmax(unit, op, step, i)
