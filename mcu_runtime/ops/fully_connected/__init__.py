"""FULLY_CONNECTED int8 (TFLite ``reference_integer_ops::FullyConnected`` /
``FullyConnectedPerChannel``, as TFLM's fully_connected.cc dispatches them).

Weights are (O, I); the input is flattened to (-1, I). The requantization is TFLM's
``MultiplyByQuantizedMultiplier`` with double rounding (SaturatingRoundingDoublingHighMul,
then RoundingDivideByPOT), on both paths. The multiplier is ``input_scale · filter_scale /
output_scale`` with the float32 scales widened to double *before* the product
(``static_cast<double>(input_scale) * static_cast<double>(filter_scale)``, as TFLM's
``CalculateOpDataFullyConnected`` and ``GetQuantizedConvolutionMultipler`` compute the
input-product scale), per channel or once per tensor. Taking the product in float32 first
changes the Q31 multiplier by a few units and flips near-tie outputs by one LSB
(ad01_int8: 11 of 2,000 random inputs); tests/test_exactness.py checks thousands of inputs
against the tflite_micro interpreter. No scratch, never in place.

The C runtime runs dense weights with a zero point of 0 (every int8 model TFLM accepts) as
CONV_2D's GEMM (``tm_gemm2``): the weights in the paired-row layout and the input zero point
folded into ``kernel_bias`` here, two batch rows at a time.
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
from tinymcu.mcu_runtime.ops.base import OpDef, qparams, quant_of
from tinymcu.mcu_runtime.ops.conv import act_clamp, channel_multipliers, folded_bias
from tinymcu.mcu_runtime.ops.fully_connected import kernel


@dataclass(frozen=True, eq=False)
class FullyConnectedParams:
    """Per-output (multiplier, shift) — per-tensor weights repeated — zero points, clamp."""

    mult: np.ndarray
    shift: np.ndarray
    in_zp: int
    w_zp: int
    out_zp: int
    act_min: int
    act_max: int
    units: int
    depth: int
    batches: int
    #: bias - in_zp · Σ weights row, int32 (wrapped), when the weights' zero point is 0: the
    #: C GEMM's accumulator start, so its loop is a pure dot product (None otherwise)
    kernel_bias: np.ndarray | None = None


def multipliers(op: Op, graph: Graph, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) arrays: one per output channel, or a single pair per tensor
    (broadcast by the caller)."""
    mult, shift = channel_multipliers(op, graph, channels)
    if quant_of(graph, op.inputs[1]).scale.size > 1:
        return mult, shift
    return mult[:1], shift[:1]


@register
class FullyConnected(OpDef):
    kinds = ("FULLY_CONNECTED",)
    options_type = {"FULLY_CONNECTED": 8}
    tflm_opdata = {"FULLY_CONNECTED": "iiiiiiii" "i" "pp" "b" "|ii"}  # OpDataFullyConnected
    tflm_options = {"FULLY_CONNECTED": 16}  # TfLiteFullyConnectedParams
    tflm_wheel_extra = {"FULLY_CONNECTED": 16}
    untileable = "flattens its input"
    header = "tm_fully_connected.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 3, required=2)
        x, w, out = ins[0], ins[1], outs[0]
        d.const(w, "weights")
        d.rank(w, 2, "weights")
        units, depth = w.shape
        d.need(opts is None or int(opts.scalar(1, "int8")) == 0,
               "shuffled weights format is not supported")
        keep = bool(opts.scalar(2, "bool", False)) if opts else False
        d.need(depth >= 1 and x.size % depth == 0,
               f"input of {x.size} elements is not a multiple of the weights depth {depth}")
        if keep:
            d.need(x.shape[-1:] == (depth,) and out.shape == x.shape[:-1] + (units,),
                   f"keep_num_dims output {out.shape} should be {x.shape[:-1] + (units,)}")
        else:
            d.need(out.shape[-1:] == (units,) and out.size == x.size // depth * units,
                   f"output shape {out.shape} should hold {x.size // depth} rows of {units}")
        d.bias(ins[2] if len(ins) > 2 else None, units)
        return {"activation": d.activation(opts, 0), "keep_num_dims": keep}

    def params(self, op: Op, graph: Graph) -> FullyConnectedParams:
        o, n = graph.tensors[op.inputs[1]].shape
        mult, shift = multipliers(op, graph, o)
        lo, hi = act_clamp(op, graph)
        in_zp, w_zp = qparams(graph, op.inputs[0])[1], qparams(graph, op.inputs[1])[1]
        w = graph.tensors[op.inputs[1]].data
        kbias = None
        if w_zp == 0 and w is not None:
            b = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] >= 0 \
                else None
            kbias = folded_bias(np.asarray(w), in_zp, b)
        return FullyConnectedParams(
            np.broadcast_to(mult, (o,)), np.broadcast_to(shift, (o,)), in_zp, w_zp,
            qparams(graph, op.outputs[0])[1], lo, hi, o, n,
            graph.tensors[op.inputs[0]].size // n, kbias)

    def macs(self, op: Op, graph: Graph) -> int:
        o, i = graph.tensors[op.inputs[1]].shape
        batches = graph.tensors[op.inputs[0]].size // i
        return int(batches * o * i)

    def tflm_per_channel(self, op: Op, graph: Graph) -> bool:
        q = graph.tensors[op.inputs[1]].quant
        return q is not None and q.scale.size > 1

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        y = kernel.fully_connected(self.params(op, graph), inputs)
        return [y.reshape(graph.tensors[op.outputs[0]].shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.fully_connected.emit import emit_fully_connected
        return emit_fully_connected(unit, op, step, i)
