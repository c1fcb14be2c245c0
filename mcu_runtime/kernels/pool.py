"""AVERAGE_POOL_2D and MAX_POOL_2D on int8 (TFLite ``reference_integer_ops`` pooling).

Average pooling divides by the number of *real* input pixels under the window (padding is
not counted) with TFLite's rounding: ``(sum ± count/2) / count`` truncated toward zero. With an
explicit ``pad`` (patch mode) "padding" is exactly that explicit pad: halo pixels a tile reads
from its neighbours are real image pixels inside the input region and are counted.
Output and input share scale and zero point (TFLite requires it), so no requantization, only
the fused-activation clamp. Pools need no scratch and are not in place.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from . import padding
from .quant import activation_range

kinds = ("AVERAGE_POOL_2D", "MAX_POOL_2D")


def _filter(op: Op) -> tuple[int, int]:
    return tuple(op.attrs["filter"])  # type: ignore[return-value]


def macs(op: Op, graph: Graph) -> int:
    fh, fw = _filter(op)
    return graph.tensors[op.outputs[0]].size * fh * fw


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    return False


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: padding.Pad | None = None) -> list[np.ndarray]:
    x = inputs[0]
    k = _filter(op)
    stride = tuple(op.attrs.get("stride", (1, 1)))
    p = pad if pad is not None else padding.same_valid_pad(op, x.shape[1:3], k)
    out_hw = padding.output_hw(x.shape[1:3], k, stride, (1, 1), p)
    out = graph.tensors[op.outputs[0]]
    lo, hi = activation_range(op.attrs.get("activation", "NONE"),
                              float(out.quant.scale.ravel()[0]),
                              int(out.quant.zero_point.ravel()[0]))
    if op.kind == "MAX_POOL_2D":
        xp = padding.pad_nhwc(x.astype(np.int64), p, -(1 << 20))
        acc = np.full((x.shape[0], *out_hw, x.shape[3]), -(1 << 20), dtype=np.int64)
        for _, _, view in padding.windows(xp, k, stride, (1, 1), out_hw):
            acc = np.maximum(acc, view)
        return [np.clip(acc, lo, hi).astype(np.int8)]
    xp = padding.pad_nhwc(x.astype(np.int64), p, 0)
    valid = padding.pad_nhwc(np.ones((1, *x.shape[1:3], 1), dtype=np.int64), p, 0)
    acc = np.zeros((x.shape[0], *out_hw, x.shape[3]), dtype=np.int64)
    count = np.zeros((1, *out_hw, 1), dtype=np.int64)
    for (_, _, view), (_, _, v) in zip(padding.windows(xp, k, stride, (1, 1), out_hw),
                                       padding.windows(valid, k, stride, (1, 1), out_hw),
                                       strict=True):
        acc += view
        count += v
    half = count // 2
    avg = np.where(acc > 0, (acc + half) // count, -((-(acc - half)) // count))
    return [np.clip(avg, lo, hi).astype(np.int8)]
