"""AVERAGE_POOL_2D and MAX_POOL_2D on int8 (TFLite ``reference_integer_ops`` pooling).

Average pooling divides by the number of *real* input pixels under the window (padding is
not counted) with TFLite's rounding: ``(sum ± count/2) / count`` truncated toward zero. With an
explicit ``pad`` (patch mode) "padding" is exactly that explicit pad: halo pixels a tile reads
from its neighbours are real image pixels inside the input region and are counted.
Output and input share scale and zero point (TFLite requires it), so no requantization, only
the fused-activation clamp. Pools need no scratch and are not in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad, Window, op_window
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef
from tinymcu.mcu_runtime.ops.conv import act_clamp
from tinymcu.mcu_runtime.ops.pool import kernel


@dataclass(frozen=True)
class PoolParams:
    kernel: tuple[int, int]
    stride: tuple[int, int]
    act_min: int
    act_max: int


@register
class Pool(OpDef):
    kinds = ("AVERAGE_POOL_2D", "MAX_POOL_2D")
    options_type = {"AVERAGE_POOL_2D": 5, "MAX_POOL_2D": 5}
    tiling = "window"
    tflm_opdata = {"AVERAGE_POOL_2D": "iiii" "iiii",  # OpDataPooling
                   "MAX_POOL_2D": "iiii" "iiii"}
    tflm_options = {"AVERAGE_POOL_2D": 40, "MAX_POOL_2D": 40}
    header = "tm_pool.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 1, 1)
        x, out = ins[0], outs[0]
        d.rank(x, 4, "input")
        d.rank(out, 4, "output")
        stride = (d.positive(opts, 2, "stride_h"), d.positive(opts, 1, "stride_w"))
        filt = (d.positive(opts, 4, "filter_height"), d.positive(opts, 3, "filter_width"))
        padding = d.padding(opts, 0)
        d.window(x, out, filt, stride, (1, 1), padding, x.shape[3])
        return {"stride": stride, "filter": filt, "padding": padding,
                "activation": d.activation(opts, 5)}

    def params(self, op: Op, graph: Graph) -> PoolParams:
        lo, hi = act_clamp(op, graph)
        return PoolParams(tuple(op.attrs["filter"]), tuple(op.attrs.get("stride", (1, 1))), lo,
                          hi)

    def macs(self, op: Op, graph: Graph) -> int:
        fh, fw = op.attrs["filter"]
        return graph.tensors[op.outputs[0]].size * fh * fw

    def window(self, op: Op, graph: Graph) -> Window:
        src = graph.tensors[op.inputs[0]].shape
        dst = graph.tensors[op.outputs[0]].shape
        return op_window(op, (src[1], src[2]), (dst[1], dst[2]), tuple(op.attrs["filter"]))

    def tflm_cmsis_nn_scratch(self, op: Op, graph: Graph) -> list[int]:
        """``arm_avgpool_s8_get_buffer_size`` (DSP build): one int32 sum per channel for an
        int8 average pool; max pool needs none."""
        x = graph.tensors[op.inputs[0]]
        if op.kind != "AVERAGE_POOL_2D" or x.dtype != "int8":
            return []
        return [4 * x.shape[-1]]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.pool(op, self.params(op, graph), inputs[0], pad)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.pool.emit import emit_pool
        return emit_pool(unit, op, step, i)
