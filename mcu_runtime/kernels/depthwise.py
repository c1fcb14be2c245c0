"""DEPTHWISE_CONV_2D int8, per-channel (TFLite ``reference_integer_ops::DepthwiseConvPerChannel``).

Filters are 1×KH×KW×(C·M); output channel ``c·M + m`` reads input channel ``c``.

In place (TinyEngine): with depth multiplier 1 the output can overwrite the input buffer.
The C runtime works channel by channel: it copies input channel ``c`` (H·W bytes, strided by C
in NHWC) into a one-channel temporary, then writes output channel ``c`` into the same strided
slots. Slot ``p·C + c`` only ever held channel ``c``, so nothing still needed is clobbered as
long as the output has no more pixels than the input. That temporary is the op's scratch,
H·W bytes; without in-place execution (multiplier > 1 or a larger output) it is a direct
kernel with no scratch.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from . import padding
from .conv import add_bias_and_requantize, centred_input

kinds = ("DEPTHWISE_CONV_2D",)


def macs(op: Op, graph: Graph) -> int:
    out = graph.tensors[op.outputs[0]].shape
    flt = graph.tensors[op.inputs[1]].shape  # 1, KH, KW, C*M
    return int(np.prod(out, dtype=np.int64)) * int(flt[1] * flt[2])


def inplace(op: Op, graph: Graph) -> bool:
    inp = graph.tensors[op.inputs[0]]
    out = graph.tensors[op.outputs[0]]
    return (op.attrs.get("depth_multiplier", 1) == 1 and inp.shape[-1] == out.shape[-1]
            and out.size <= inp.size)


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    """In place, channel by channel (TinyEngine): one input channel is copied aside before
    its output overwrites it, so the scratch is one channel of the input read — of the
    tile's input region when running on a patch."""
    if not inplace(op, graph):
        return 0
    if region is not None:
        return region.h * region.w
    shape = graph.tensors[op.inputs[0]].shape
    return int(shape[1] * shape[2])


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: padding.Pad | None = None) -> list[np.ndarray]:
    x, w = inputs[0], np.asarray(inputs[1])
    _, kh, kw, oc = w.shape
    mult_d = oc // x.shape[-1]
    xp, stride, dilation, out_hw = centred_input(op, graph, x, (kh, kw), pad, np.int64)
    if mult_d > 1:
        xp = np.repeat(xp, mult_d, axis=-1)  # channel c·M + m reads input channel c
    wi = w.astype(np.int64)
    acc = np.zeros((x.shape[0], *out_hw, oc), dtype=np.int64)
    for ky, kx, view in padding.windows(xp, (kh, kw), stride, dilation, out_hw):
        acc += view * wi[0, ky, kx, :]
    return [add_bias_and_requantize(acc, inputs[2] if len(inputs) > 2 else None, op, graph)]
