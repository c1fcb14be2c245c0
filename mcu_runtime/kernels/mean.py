"""MEAN on int8 — the paths TFLM's reduce.cc takes, each reproduced exactly.

* Rescaling path — 4-D input over axes {1, 2} with keep_dims (``reference_integer_ops::Mean``,
  the global average pool), or any other case where input and output quantization differ
  (``QuantizedMeanOrSum``): the 1/count factor is folded into the fixed-point multiplier of
  ``s_in/s_out`` (``(m << k) / count`` with ``k = floor(log2(count))``, capped at 32 and at
  ``31 + shift``), then ``sum(q) - zp_in·count`` is rescaled once and ``zp_out`` added.
  (Dividing with rounding *after* rescaling — an older form of the kernel — is off by one on
  some inputs; the test models catch it.)
* Same scale and zero point in and out, not the 4-D special case: ``reference_ops::Mean`` —
  the raw int8 sum divided by the count with C's truncating division, no zero-point term.

Our C runtime keeps one int32 accumulator per output element in scratch for the general
reduction (as TFLM does); the global-average-pool case accumulates one channel at a time
in a register and needs none.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from .quant import multiply_by_quantized_multiplier, quantize_multiplier, wrap32

kinds = ("MEAN",)


def _axes(op: Op, graph: Graph, axis_data: np.ndarray | None = None) -> tuple[int, ...]:
    if axis_data is None:
        t = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        axis_data = t.data if t is not None and t.data is not None else op.attrs.get("axis")
    rank = len(graph.tensors[op.inputs[0]].shape)
    out: list[int] = []
    for a in np.atleast_1d(np.asarray(axis_data, dtype=np.int64)).tolist():
        a = a + rank if a < 0 else a
        if a not in out:
            out.append(a)
    return tuple(out)


def _special_4d(op: Op, graph: Graph, axes: tuple[int, ...]) -> bool:
    return (len(graph.tensors[op.inputs[0]].shape) == 4 and len(axes) == 2
            and set(axes) == {1, 2} and bool(op.attrs.get("keep_dims", False)))


def macs(op: Op, graph: Graph) -> int:
    return graph.tensors[op.inputs[0]].size


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    if _special_4d(op, graph, _axes(op, graph)):
        return 0
    return 4 * graph.tensors[op.outputs[0]].size


def inplace(op: Op, graph: Graph) -> bool:
    return False


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    x = inputs[0].astype(np.int64)
    axes = _axes(op, graph, inputs[1] if len(inputs) > 1 else None)
    tin, tout = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    s_in, s_out = (float(np.float32(t.quant.scale.ravel()[0])) for t in (tin, tout))
    zp_in, zp_out = (int(t.quant.zero_point.ravel()[0]) for t in (tin, tout))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    m, shift = quantize_multiplier(s_in / s_out)
    total = wrap32(x.sum(axis=axes))
    if zp_in == zp_out and s_in == s_out and not _special_4d(op, graph, axes):
        q = np.abs(total) // count
        y = np.where(total < 0, -q, q)
    else:
        sh = min(count.bit_length() - 1, 32, 31 + shift)
        m2 = (m << sh) // count
        y = multiply_by_quantized_multiplier(wrap32(total - zp_in * count), m2, shift - sh) + zp_out
    return [np.clip(y, -128, 127).astype(np.int8).reshape(
        _out_shape(x.shape, axes, bool(op.attrs.get("keep_dims", False))))]


def _out_shape(shape: tuple[int, ...], axes: tuple[int, ...], keep: bool) -> tuple[int, ...]:
    if keep:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)
