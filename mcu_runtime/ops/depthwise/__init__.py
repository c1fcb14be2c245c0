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

from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad, Window, same_valid_pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, PrepareStep
from tinymcu.mcu_runtime.ops.conv import (
    TFLM_CONV_OPDATA,
    ConvParams,
    conv_params,
    conv_window,
    speed,
    tflm_conv_prepare,
)
from tinymcu.mcu_runtime.ops.depthwise import kernel
from tinymcu.mcu_runtime.schedule import Region


def inplace_group(op: Op, graph: Graph) -> int:
    """Input channels the in-place kernel copies aside at a time: 4 (its SIMD width) when
    planned for speed, 1 with ``--optimize memory``."""
    return min(4, graph.tensors[op.inputs[0]].shape[-1]) if speed(op) else 1


@register
class DepthwiseConv2D(OpDef):
    kinds = ("DEPTHWISE_CONV_2D",)
    options_type = {"DEPTHWISE_CONV_2D": 2}
    tiling = "window"
    tflm_opdata = {"DEPTHWISE_CONV_2D": TFLM_CONV_OPDATA}
    tflm_options = {"DEPTHWISE_CONV_2D": 28}
    header = "tm_depthwise.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        x, w, out, attrs = d.filtered_window(ins, outs, opts, 6)
        channels = w.shape[3]
        d.need(w.shape[0] == 1, f"depthwise filter shape {w.shape} should start with 1")
        d.need(x.shape[3] >= 1 and channels % x.shape[3] == 0,
               f"filter channels {channels} are not a multiple of input channels {x.shape[3]}")
        d.window(x, out, (w.shape[1], w.shape[2]), attrs["stride"], attrs["dilation"],
                 attrs["padding"],
                 channels)
        d.bias(ins[2] if len(ins) > 2 else None, channels)
        # TF >= 2 ignores the stored depth_multiplier and derives it from the shapes, as here.
        return {**attrs, "depth_multiplier": channels // x.shape[3],
                "activation": d.activation(opts, 4)}

    def params(self, op: Op, graph: Graph) -> ConvParams:
        return conv_params(op, graph)

    def macs(self, op: Op, graph: Graph) -> int:
        out = graph.tensors[op.outputs[0]].shape
        flt = graph.tensors[op.inputs[1]].shape  # 1, KH, KW, C*M
        return int(np.prod(out, dtype=np.int64)) * int(flt[1] * flt[2])

    def inplace(self, op: Op, graph: Graph) -> bool:
        inp = graph.tensors[op.inputs[0]]
        out = graph.tensors[op.outputs[0]]
        return (op.attrs.get("depth_multiplier", 1) == 1 and inp.shape[-1] == out.shape[-1]
                and out.size <= inp.size)

    def scratch_bytes(self, op: Op, graph: Graph, region: Region | None = None) -> int:
        """In place, channel by channel (TinyEngine): one input channel is copied aside
        before its output overwrites it, so the scratch is one channel of the input read —
        of the tile's input region when running on a patch. Planned for speed, a group of
        4 channels is copied at a time, padded by the op's own padding (a step pads at most
        that), so the SIMD kernel runs on it with no border cases."""
        if not self.inplace(op, graph):
            return 0
        shape = graph.tensors[op.inputs[0]].shape
        h, w = (region.h, region.w) if region is not None else (int(shape[1]), int(shape[2]))
        group = inplace_group(op, graph)
        if group == 1:
            return h * w
        top, bottom, left, right = same_valid_pad(op, (int(shape[1]), int(shape[2])),
                                                  conv_window(op, graph).kernel)
        return (h + top + bottom) * (w + left + right) * group

    def window(self, op: Op, graph: Graph) -> Window:
        return conv_window(op, graph)

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[PrepareStep]:
        return tflm_conv_prepare(op, graph)

    def tflm_cmsis_nn_scratch(self, op: Op, graph: Graph) -> list[int]:
        """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (DSP build): a multiplier-1,
        batch-1, undilated depthwise runs the 3x3 kernel (no buffer) when the filter is 3x3
        with padding <= 1, else the ``_opt`` kernel with ``c_in*kh*kw*sizeof(int16)``;
        any other depthwise needs none."""
        x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        if x.dtype != "int8":
            return []
        kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
        dilated = tuple(op.attrs.get("dilation", (1, 1))) != (1, 1)
        if x.shape[-1] != y.shape[-1] or x.shape[0] != 1 or dilated:
            return []
        top, _, left, _ = same_valid_pad(op, (x.shape[1], x.shape[2]), (kh, kw))
        if (kh, kw) == (3, 3) and top <= 1 and left <= 1:
            return []
        return [2 * x.shape[-1] * kh * kw]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.depthwise(op, self.params(op, graph), inputs, pad)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.depthwise.emit import emit_depthwise
        return emit_depthwise(unit, op, step, i)
