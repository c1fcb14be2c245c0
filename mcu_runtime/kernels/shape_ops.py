"""Data-movement ops: RESHAPE, SQUEEZE, TRANSPOSE, CONCATENATION, PAD, QUANTIZE, DEQUANTIZE.

RESHAPE and SQUEEZE only relabel the same bytes (in place, no copy in our runtime).
CONCATENATION copies; int8 inputs whose scale/zero point differ from the output's are
requantized with TFLite's ``ConcatenationWithScaling`` float formula (the TFLite converter
normally unifies the scales, and TFLM refuses models where it did not).
PAD fills with the output zero point (real 0) unless PADV2 gives a constant; on a patch tile
the explicit ``pad`` says how much of that border falls inside the tile (H and W only).
QUANTIZE float32→int8 is ``AffineQuantize`` (double division, round half away from zero);
int8→int8 is ``Requantize`` (fixed-point multiplier, in place). DEQUANTIZE computes
``float(double(scale) · (q - zp))``.
"""

from __future__ import annotations

import numpy as np

from ...errors import TinymcuError
from ..ir import Graph, Op
from ..schedule import Region
from .quant import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away

kinds = ("RESHAPE", "SQUEEZE", "TRANSPOSE", "CONCATENATION", "PAD", "PADV2", "QUANTIZE",
         "DEQUANTIZE")

_INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def macs(op: Op, graph: Graph) -> int:
    return 0


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    if op.kind in ("RESHAPE", "SQUEEZE"):
        return True
    if op.kind == "QUANTIZE":
        return graph.tensors[op.inputs[0]].dtype == graph.tensors[op.outputs[0]].dtype
    return False


def _qp(graph: Graph, t: int) -> tuple[float, int]:
    q = graph.tensors[t].quant
    return float(np.float32(q.scale.ravel()[0])), int(q.zero_point.ravel()[0])


def _axis(op: Op, rank: int) -> int:
    a = int(op.attrs.get("axis", 0))
    return a + rank if a < 0 else a


def _concat(op: Op, graph: Graph, inputs: list[np.ndarray | None]) -> np.ndarray:
    out_t = graph.tensors[op.outputs[0]]
    axis = _axis(op, inputs[0].ndim)
    if out_t.quant is None:
        return np.concatenate(inputs, axis=axis)
    s_out, zp_out = _qp(graph, op.outputs[0])
    inv_out = np.float32(1.0) / np.float32(s_out)
    parts = []
    for t, x in zip(op.inputs, inputs, strict=True):
        s, zp = _qp(graph, t)
        if s == s_out and zp == zp_out:
            parts.append(x)
            continue
        scale = np.float32(s) * inv_out
        bias = np.float32(-zp) * scale
        v = round_half_away(x.astype(np.float32) * scale + bias).astype(np.int64) + zp_out
        parts.append(np.clip(v, -128, 127).astype(x.dtype))
    return np.concatenate(parts, axis=axis)


def _pad(op: Op, graph: Graph, inputs: list[np.ndarray | None],
         tile_pad: tuple[int, int, int, int] | None) -> np.ndarray:
    """PAD/PADV2; on a tile (``tile_pad`` given) only the part of the border inside the tile."""
    x = inputs[0]
    if tile_pad is not None:
        t, b, left, r = tile_pad
        widths = np.array([[0, 0], [t, b], [left, r], [0, 0]], dtype=np.int64)
    else:
        widths = np.asarray(inputs[1], dtype=np.int64).reshape(-1, 2)
        widths = np.concatenate([np.zeros((x.ndim - len(widths), 2), np.int64), widths])
    if op.kind == "PADV2" and len(inputs) > 2 and inputs[2] is not None:
        value = np.asarray(inputs[2]).ravel()[0]
    else:
        out_q = graph.tensors[op.outputs[0]].quant
        value = int(out_q.zero_point.ravel()[0]) if out_q is not None else 0
    return np.pad(x, [tuple(w) for w in widths.tolist()], constant_values=value)


def _quantize(op: Op, graph: Graph, x: np.ndarray) -> np.ndarray:
    out_t = graph.tensors[op.outputs[0]]
    if out_t.dtype not in _INT_RANGE:
        raise TinymcuError(f"unsupported op QUANTIZE to {out_t.dtype} (op {op.index})")
    lo, hi = _INT_RANGE[out_t.dtype]
    s_out, zp_out = _qp(graph, op.outputs[0])
    if x.dtype == np.float32:
        q = round_half_away(x.astype(np.float64) / s_out)
        q = np.clip(q, -(2.0**31), 2.0**31 - 1).astype(np.int64) + zp_out
    else:
        s_in, zp_in = _qp(graph, op.inputs[0])
        m, sh = quantize_multiplier(s_in / s_out)
        q = multiply_by_quantized_multiplier(x.astype(np.int64) - zp_in, m, sh) + zp_out
    return np.clip(q, lo, hi).astype(out_t.dtype)


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    x = inputs[0]
    out_t = graph.tensors[op.outputs[0]]
    if op.kind in ("RESHAPE", "SQUEEZE"):
        return [x.reshape(out_t.shape)]
    if op.kind == "TRANSPOSE":
        perm = inputs[1] if len(inputs) > 1 and inputs[1] is not None else op.attrs["perm"]
        return [np.transpose(x, [int(p) for p in np.asarray(perm).ravel()])]
    if op.kind == "CONCATENATION":
        return [_concat(op, graph, inputs)]
    if op.kind in ("PAD", "PADV2"):
        return [_pad(op, graph, inputs, pad)]
    if op.kind == "QUANTIZE":
        return [_quantize(op, graph, x)]
    s, zp = _qp(graph, op.inputs[0])
    return [(s * (x.astype(np.float64) - zp)).astype(np.float32)]
