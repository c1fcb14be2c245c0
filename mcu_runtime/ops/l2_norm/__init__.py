"""L2_NORMALIZATION int8 over the last axis (TFLM's ``l2norm.cc``,
``reference_integer_ops::L2Normalization``): per row, the integer sum of squared centred
inputs gives an inverse square root as a fixed-point (multiplier, shift) —
``GetInvSqrtQuantizedMultiplierExp``, five gemmlowp Newton–Raphson steps — and every
element is rescaled with it to the fixed output quantization (scale 1/128, zero point 0,
which TFLM's Prepare requires). The multiplier depends on the data, so it is computed at
run time in C as in the emulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.l2_norm import kernel


@dataclass(frozen=True)
class L2NormParams:
    """Rows × depth of the input and its zero point (the output quantization is fixed)."""

    outer: int
    depth: int
    in_zp: int


@register
class L2Norm(OpDef):
    kinds = ("L2_NORMALIZATION",)
    options_type = {"L2_NORMALIZATION": 12}
    untileable = "normalizes whole channel vectors"
    tflm_opdata = {"L2_NORMALIZATION": "i"}
    tflm_options = {"L2_NORMALIZATION": 4}
    header = "tm_l2_norm.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        attrs = d.unary(ins, outs, opts)
        d.need(d.activation(opts, 0) == "NONE", "a fused activation is not supported")
        out = outs[0]
        d.need(out.quant is not None and float(out.quant.scale[0]) == 1 / 128
               and int(out.quant.zero_point[0]) == 0,
               "output quantization must be scale 1/128, zero point 0 (as TFLM requires)")
        d.need(len(ins[0].shape) >= 1, "input must have at least one axis")
        return attrs

    def params(self, op: Op, graph: Graph) -> L2NormParams:
        shape = graph.tensors[op.inputs[0]].shape
        return L2NormParams(int(np.prod(shape[:-1], dtype=np.int64)), shape[-1],
                            qparams(graph, op.inputs[0])[1])

    def macs(self, op: Op, graph: Graph) -> int:
        return 2 * graph.tensors[op.inputs[0]].size

    def inplace(self, op: Op, graph: Graph) -> bool:
        return True  # each row is read whole before any of it is written

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        return [kernel.l2_normalize(self.params(op, graph), np.asarray(x))]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        p = self.params(op, unit.graph)
        src = unit.buffer_offset(step, op.inputs[0])
        dst = unit.buffer_offset(step, op.outputs[0])
        return [f"tm_l2_norm((const int8_t *)(tm_arena + {src}), (int8_t *)(tm_arena + {dst}), "
                f"{p.outer}, {p.depth}, {p.in_zp});"]
