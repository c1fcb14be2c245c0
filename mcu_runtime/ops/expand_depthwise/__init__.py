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

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.geometry import Pad, Window
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import get, register
from tinymcu.mcu_runtime.ops.base import OpDef
from tinymcu.mcu_runtime.ops.conv import ConvParams, conv_params, conv_window
from tinymcu.mcu_runtime.ops.expand_depthwise import kernel
from tinymcu.mcu_runtime.schedule import Region


@dataclass(frozen=True, eq=False)
class ExpandDepthwiseParams:
    expand: ConvParams
    dw: ConvParams


def parts(op: Op) -> tuple[Op, Op]:
    """The (1×1 conv, depthwise) pair the op stands for."""
    return op.attrs["expand"], op.attrs["depthwise"]


@register
class ExpandDepthwise(OpDef):
    kinds = ("EXPAND_DEPTHWISE",)
    internal = True
    tiling = "window"
    header = "tm_expand_depthwise.h"

    def params(self, op: Op, graph: Graph) -> ExpandDepthwiseParams:
        expand, dw = parts(op)
        return ExpandDepthwiseParams(conv_params(expand, graph), conv_params(dw, graph))

    def macs(self, op: Op, graph: Graph) -> int:
        expand, dw = parts(op)
        return get(expand.kind).macs(expand, graph) + get(dw.kind).macs(dw, graph)

    def input_macs(self, op: Op, graph: Graph) -> int:
        """The MACs that scale with the input region (the 1×1 conv runs over every pixel the
        depthwise reads, halo included), as opposed to the output tile."""
        expand = parts(op)[0]
        return get(expand.kind).macs(expand, graph)

    def scratch_bytes(self, op: Op, graph: Graph, region: Region | None = None) -> int:
        """One channel of the expanded tensor over the input region read."""
        if region is not None:
            return region.h * region.w
        shape = graph.tensors[op.inputs[0]].shape
        return int(shape[1] * shape[2])

    def window(self, op: Op, graph: Graph) -> Window:
        """A 1×1 stride-1 conv keeps H and W: the window is the depthwise's."""
        return conv_window(parts(op)[1], graph)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        expand, dw = parts(op)
        return [kernel.expand_depthwise(expand, dw, self.params(op, graph), inputs, pad)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.expand_depthwise.emit import emit_expand_depthwise
        return emit_expand_depthwise(unit, op, step, i)
