"""ADD, SUB and MUL on int8 with broadcasting (TFLite reference integer kernels).

ADD/SUB bring both inputs onto a common scale first: each offset-corrected input is shifted
left by 20 bits and scaled by ``s_i / (2·max(s1, s2))``, the scaled values are summed (or
subtracted), then rescaled to the output by ``2·max(s1, s2) / (2^20 · s_out)``. TFLM computes
the three real multipliers in double for ADD but in float32 for SUB; we follow each.
MUL multiplies the offset-corrected inputs and rescales once by ``s1·s2/s_out``.

All three are in place: output element i depends only on input element i, so the output may
overwrite input 0 (when the shapes match; a broadcast input is never the one overwritten).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from .quant import (
    activation_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    wrap32,
)

kinds = ("ADD", "SUB", "MUL")

LEFT_SHIFT = 20


def macs(op: Op, graph: Graph) -> int:
    return graph.tensors[op.outputs[0]].size


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    return graph.tensors[op.inputs[0]].shape == graph.tensors[op.outputs[0]].shape


def _scale(graph: Graph, t: int) -> float:
    return float(np.float32(graph.tensors[t].quant.scale.ravel()[0]))


def _zp(graph: Graph, t: int) -> int:
    return int(graph.tensors[t].quant.zero_point.ravel()[0])


def _add_multipliers(op: Op, graph: Graph) -> list[tuple[int, int]]:
    s1, s2 = _scale(graph, op.inputs[0]), _scale(graph, op.inputs[1])
    so = _scale(graph, op.outputs[0])
    if op.kind == "ADD":
        twice_max = 2 * max(s1, s2)
        reals = [s1 / twice_max, s2 / twice_max, twice_max / ((1 << LEFT_SHIFT) * so)]
    else:
        f32 = np.float32
        twice_max = f32(2) * f32(max(s1, s2))
        reals = [float(f32(s1) / twice_max), float(f32(s2) / twice_max),
                 float(twice_max / (f32(1 << LEFT_SHIFT) * f32(so)))]
    return [quantize_multiplier(r) for r in reals]


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    a = inputs[0].astype(np.int64) - _zp(graph, op.inputs[0])
    b = inputs[1].astype(np.int64) - _zp(graph, op.inputs[1])
    out_zp = _zp(graph, op.outputs[0])
    lo, hi = activation_range(op.attrs.get("activation", "NONE"),
                              _scale(graph, op.outputs[0]), out_zp)
    if op.kind == "MUL":
        s = _scale(graph, op.inputs[0]) * _scale(graph, op.inputs[1]) / _scale(graph, op.outputs[0])
        m, sh = quantize_multiplier(s)
        y = multiply_by_quantized_multiplier(wrap32(a * b), m, sh) + out_zp
    else:
        (m1, sh1), (m2, sh2), (mo, sho) = _add_multipliers(op, graph)
        a = multiply_by_quantized_multiplier(a << LEFT_SHIFT, m1, sh1)
        b = multiply_by_quantized_multiplier(b << LEFT_SHIFT, m2, sh2)
        raw = wrap32(a + b) if op.kind == "ADD" else wrap32(a - b)
        y = multiply_by_quantized_multiplier(raw, mo, sho) + out_zp
    return [np.clip(y, lo, hi).astype(np.int8)]
