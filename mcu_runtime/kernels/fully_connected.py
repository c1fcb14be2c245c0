"""FULLY_CONNECTED int8 (TFLite ``reference_integer_ops::FullyConnected``).

Weights are (O, I); the input is flattened to (-1, I). Per-tensor weights use
``GetQuantizedConvolutionMultipler`` — note the input·filter scale product is taken in
float32 before widening to double, as TFLite's kernel_util.cc does — and per-channel weights
(TFLM supports them) the per-channel formula of CONV_2D. No scratch, never in place.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from .conv import channel_multipliers, requantize_output
from .quant import quantize_multiplier

kinds = ("FULLY_CONNECTED",)


def macs(op: Op, graph: Graph) -> int:
    o, i = graph.tensors[op.inputs[1]].shape
    batches = graph.tensors[op.inputs[0]].size // i
    return int(batches * o * i)


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    return False


def _multipliers(op: Op, graph: Graph, channels: int) -> tuple[np.ndarray, np.ndarray]:
    flt = graph.tensors[op.inputs[1]]
    if flt.quant.scale.size > 1:
        return channel_multipliers(op, graph, channels)
    inp, out = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    product = np.float32(inp.quant.scale.ravel()[0]) * np.float32(flt.quant.scale.ravel()[0])
    m, s = quantize_multiplier(float(product) / float(np.float32(out.quant.scale.ravel()[0])))
    return np.array([m], dtype=np.int64), np.array([s], dtype=np.int64)


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    x, w = inputs[0], np.asarray(inputs[1])
    bias = inputs[2] if len(inputs) > 2 else None
    o, i = w.shape
    in_zp = int(graph.tensors[op.inputs[0]].quant.zero_point.ravel()[0])
    w_zp = int(graph.tensors[op.inputs[1]].quant.zero_point.ravel()[0])
    xf = x.reshape(-1, i).astype(np.float64) - in_zp
    acc = (xf @ (w.astype(np.float64) - w_zp).T).astype(np.int64)
    if bias is not None:
        acc += np.asarray(bias, dtype=np.int64)
    mult, shift = _multipliers(op, graph, o)
    y = requantize_output(acc, op, graph, mult, shift)
    return [y.reshape(graph.tensors[op.outputs[0]].shape)]
