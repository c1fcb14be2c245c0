"""EXPAND_DEPTHWISE: a 1×1 CONV_2D and the DEPTHWISE_CONV_2D that reads it, run channel by channel.

Not a TFLite op: ``passes.fuse_expand_depthwise`` creates it from the expand and depthwise
convolutions of an inverted bottleneck. Output channel ``c`` of the depthwise reads only
channel ``c`` of the expanded tensor, so our runtime computes that one channel of the 1×1
conv over the region the depthwise reads (H·W bytes of scratch), runs the depthwise on it,
and moves to the next channel: the expanded tensor — the largest activation of a
MobileNetV2 block — never exists in SRAM. Results are those of the two TFLite ops, because
each channel goes through exactly the same int32 accumulation and requantization.

The op keeps both originals in ``attrs["expand"]`` and ``attrs["depthwise"]`` (their attrs,
weights and quantization, including the expanded tensor's), and mirrors the depthwise's
window attrs (stride, dilation, padding) so region math treats it as a depthwise.
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from . import conv, depthwise, padding

kinds = ("EXPAND_DEPTHWISE",)


def parts(op: Op) -> tuple[Op, Op]:
    """The (1×1 conv, depthwise) pair the op stands for."""
    return op.attrs["expand"], op.attrs["depthwise"]


def macs(op: Op, graph: Graph) -> int:
    expand, dw = parts(op)
    return conv.macs(expand, graph) + depthwise.macs(dw, graph)


def input_macs(op: Op, graph: Graph) -> int:
    """The MACs that scale with the input region (the 1×1 conv runs over every pixel the
    depthwise reads, halo included), as opposed to the output tile."""
    return conv.macs(parts(op)[0], graph)


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    """One channel of the expanded tensor over the input region read."""
    if region is not None:
        return region.h * region.w
    shape = graph.tensors[op.inputs[0]].shape
    return int(shape[1] * shape[2])


def inplace(op: Op, graph: Graph) -> bool:
    return False


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: padding.Pad | None = None) -> list[np.ndarray]:
    """Channel by channel, as the C runtime does: expanded channel ``c`` (int32 sum, bias,
    requantization to int8 with the expand's per-channel multiplier) exists only as one
    H×W plane, which the depthwise filter ``c`` then reads."""
    expand, dw = parts(op)
    x, w1, b1, w2, b2 = (inputs + [None] * 5)[:5]
    w1, w2 = np.asarray(w1), np.asarray(w2)
    channels = w1.shape[0]
    xc, _, _, _ = conv.centred_input(expand, graph, x, (1, 1), None, np.float64)
    m1, s1 = conv.channel_multipliers(expand, graph, channels)
    m2, s2 = conv.channel_multipliers(dw, graph, channels)
    _, kh, kw, _ = w2.shape
    out = None
    for c in range(channels):
        acc = (xc @ w1[c, 0, 0, :].astype(np.float64)).astype(np.int64)[..., None]
        if b1 is not None:
            acc = acc + int(b1[c])
        plane = conv.requantize_output(acc, expand, graph, m1[c:c + 1], s1[c:c + 1])
        pp, stride, dilation, out_hw = conv.centred_input(dw, graph, plane, (kh, kw), pad,
                                                          np.int64)
        acc = np.zeros((x.shape[0], *out_hw, 1), dtype=np.int64)
        for ky, kx, view in padding.windows(pp, (kh, kw), stride, dilation, out_hw):
            acc += view * int(w2[0, ky, kx, c])
        if b2 is not None:
            acc = acc + int(b2[c])
        if out is None:
            out = np.empty((x.shape[0], *out_hw, channels), dtype=np.int8)
        out[..., c:c + 1] = conv.requantize_output(acc, dw, graph, m2[c:c + 1], s2[c:c + 1])
    return [out]
