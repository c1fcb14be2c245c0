"""Graph passes for our own runtime: rewrites that change memory, never results.

PyTorch's ``Conv2d(padding=1)`` with stride 2 has no TFLite SAME equivalent, so exporters
emit an explicit PAD followed by a VALID conv. Executed as written, the PAD holds its input
and its padded copy at once — the SRAM peak of every PyTorch-exported MobileNetV2. Our
kernels (and TinyEngine's, and the C runtime's) pad inside the window loop, so
:func:`fold_pads` lets the conv read the PAD's input directly with explicit pads and drops
the copy. TFLM runs the PAD op as written, so the ``tflm`` target keeps the unfolded graph.

An inverted bottleneck expands channels with a 1×1 conv and then runs a depthwise conv on
the expanded tensor; with a stride-2 depthwise that tensor is the block's peak and is 4× its
output. :func:`fuse_expand_depthwise` turns such a pair into one ``EXPAND_DEPTHWISE`` op that
runs channel by channel (``ops/expand_depthwise/``), so the expanded tensor never
exists — only where that lowers the pair's peak.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinymcu.mcu_runtime.geometry import effective_size
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops.pad import pad_widths

#: window ops that pad with the input zero point, exactly what a PAD adds. Pools are left
#: alone: AVERAGE_POOL_2D excludes padding from its divisor while a PAD's pixels count, and
#: MAX_POOL_2D pads with -inf where a PAD pads with a real value.
FOLD_INTO = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D"})


def _fill_value(pad: Op, graph: Graph) -> int | None:
    """The int8 value a PAD/PADV2 writes, or None if it is not a known constant."""
    if pad.kind == "PADV2" and len(pad.inputs) > 2 and pad.inputs[2] >= 0:
        value = graph.tensors[pad.inputs[2]]
        if not value.is_const or value.size != 1:
            return None
        return int(np.asarray(value.data).ravel()[0])
    quant = graph.tensors[pad.outputs[0]].quant
    return int(quant.zero_point.ravel()[0]) if quant is not None else None


def foldable_pads(pad: Op, consumer: Op, graph: Graph) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) if ``pad`` can be folded into ``consumer``, else None.

    Folding is exact when the consumer is a VALID conv/depthwise whose only activation input
    is the PAD output, the PAD pads only H and W by non-negative amounts with the consumer's
    input zero point (padded taps then contribute 0 either way), and input and output share
    quantization (the conv's requantization reads the input scale). Each pad must be smaller
    than the window so every window still covers a real pixel, as SAME padding does — the
    invariant the patch scheduler's region walk relies on for window ops.
    """
    if consumer.kind not in FOLD_INTO or consumer.attrs.get("padding", "VALID") != "VALID":
        return None
    if pad.kind not in ("PAD", "PADV2") or len(pad.outputs) != 1:
        return None
    src, dst = graph.tensors[pad.inputs[0]], graph.tensors[pad.outputs[0]]
    if len(src.shape) != 4 or src.quant is None or src.quant != dst.quant:
        return None
    if consumer.inputs[0] != pad.outputs[0] or pad.outputs[0] in consumer.inputs[1:]:
        return None
    widths = pad_widths(pad, graph)
    if widths is None or widths[0] != (0, 0) or widths[3] != (0, 0):
        return None
    (top, bottom), (left, right) = widths[1], widths[2]
    if min(top, bottom, left, right) < 0:
        return None
    if _fill_value(pad, graph) != int(dst.quant.zero_point.ravel()[0]):
        return None
    fshape = graph.tensors[consumer.inputs[1]].shape
    dilation = consumer.attrs.get("dilation", (1, 1))
    span_h, span_w = effective_size(fshape[1], dilation[0]), effective_size(fshape[2], dilation[1])
    if max(top, bottom) >= span_h or max(left, right) >= span_w:
        return None
    return top, bottom, left, right


def fold_pads(graph: Graph) -> Graph:
    """A new graph in which every foldable PAD → conv/depthwise pair is one padded conv.

    The conv reads the PAD's input with ``padding="EXPLICIT"`` and ``pads=(top, bottom,
    left, right)``; the PAD op goes, its output tensor stays in the tensor list unused (so
    tensor indices are stable) and drops out of ``Graph.activations()``. A PAD whose output
    is a graph output or read by more than one op is kept. The input graph is not changed.
    """
    folded: dict[int, tuple[int, tuple[int, int, int, int]]] = {}  # conv index → (src, pads)
    dropped: set[int] = set()
    for op in graph.ops:
        if op.kind not in ("PAD", "PADV2") or op.outputs[0] in graph.outputs:
            continue
        readers = graph.consumers(op.outputs[0])
        if len(readers) != 1:
            continue
        pads = foldable_pads(op, readers[0], graph)
        if pads is not None:
            folded[readers[0].index] = (op.inputs[0], pads)
            dropped.add(op.index)
    ops: list[Op] = []
    for op in graph.ops:
        if op.index in dropped:
            continue
        if op.index in folded:
            src, pads = folded[op.index]
            op = replace(op, inputs=(src, *op.inputs[1:]),
                         attrs={**op.attrs, "padding": "EXPLICIT", "pads": pads})
        ops.append(replace(op, index=len(ops), attrs=dict(op.attrs)))
    return Graph(list(graph.tensors), ops, list(graph.inputs), list(graph.outputs), graph.name)


FUSED_KIND = "EXPAND_DEPTHWISE"  # ops/expand_depthwise (an internal kind)


def fusable(expand: Op, dw: Op, graph: Graph) -> bool:
    """Whether ``expand`` → ``dw`` may run as one channel-by-channel op, and it pays.

    The expand must be a 1×1, stride-1, unpadded CONV_2D whose output only ``dw`` reads
    (and is no graph output); ``dw`` a depthwise with multiplier 1 reading it as its
    activation. Unfused, the pair's peak is the expand step (its input plus the expanded
    tensor; the in-place depthwise then needs less); fused, it is the input, the depthwise's
    output and one expanded channel. Fusing only when that sum is smaller never raises any
    step's live bytes — in practice it takes the stride-2 blocks.
    """
    if expand.kind != "CONV_2D" or dw.kind != "DEPTHWISE_CONV_2D":
        return False
    mid = expand.outputs[0]
    if mid in graph.outputs or dw.inputs[0] != mid or mid in dw.inputs[1:]:
        return False
    flt = graph.tensors[expand.inputs[1]].shape
    if flt[1:3] != (1, 1) or tuple(expand.attrs.get("stride", (1, 1))) != (1, 1):
        return False
    if expand.attrs.get("padding") == "EXPLICIT" and any(expand.attrs["pads"]):
        return False
    mid_t, out_t = graph.tensors[mid], graph.tensors[dw.outputs[0]]
    if len(mid_t.shape) != 4 or mid_t.dtype != "int8" or out_t.shape[-1] != mid_t.shape[-1]:
        return False
    return out_t.nbytes + mid_t.shape[1] * mid_t.shape[2] < mid_t.nbytes


def fuse_expand_depthwise(graph: Graph) -> Graph:
    """A new graph in which every :func:`fusable` 1×1 conv → depthwise pair is one op.

    The ``EXPAND_DEPTHWISE`` op takes the depthwise's place and inputs (x, expand filter,
    expand bias, depthwise filter, depthwise bias) with -1 for an absent bias; the expanded
    tensor stays in the tensor list unused (indices are stable) and drops out of
    ``Graph.activations()``. The input graph is not changed.
    """
    fused: dict[int, Op] = {}  # depthwise index → its expand
    for op in graph.ops:
        if op.kind != "CONV_2D":
            continue
        readers = graph.consumers(op.outputs[0])
        if len(readers) == 1 and fusable(op, readers[0], graph):
            fused[readers[0].index] = op
    dropped = {op.index for op in fused.values()}
    ops: list[Op] = []
    for op in graph.ops:
        if op.index in dropped:
            continue
        if op.index in fused:
            expand = fused[op.index]
            inputs = (*expand.inputs, -1)[:3] + (*op.inputs[1:], -1)[:2]
            op = Op(op.index, FUSED_KIND, inputs, op.outputs,
                    {**op.attrs, "expand": expand, "depthwise": op})
        ops.append(replace(op, index=len(ops), attrs=dict(op.attrs)))
    return Graph(list(graph.tensors), ops, list(graph.inputs), list(graph.outputs), graph.name)
