"""QUANTIZE and DEQUANTIZE: the numeric-type changes at a model's ends.

QUANTIZE float32→int8/uint8 is ``AffineQuantize`` (float32 division, round half away from
zero, clamp); int8/uint8→int8/uint8 is ``Requantize`` (fixed-point multiplier of
``s_in/s_out``; in place when the types match). DEQUANTIZE computes
``float(double(scale) · (q - zp))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.quantize import kernel
from tinymcu.mcu_runtime.quant import quantize_multiplier

INT_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
             "int32": (-(2**31), 2**31 - 1)}


@dataclass(frozen=True)
class QuantizeParams:
    """``from_float``: q = round(x / out_scale) + out_zp; else q = requant(x - in_zp) +
    out_zp with (mult, shift). Clamped to the output type's [qmin, qmax]."""

    from_float: bool
    out_dtype: str
    out_scale: float
    out_zp: int
    in_zp: int
    mult: int
    shift: int
    qmin: int
    qmax: int


@dataclass(frozen=True)
class DequantizeParams:
    scale: float
    zp: int


@register
class Quantize(OpDef):
    kinds = ("QUANTIZE", "DEQUANTIZE")
    tiling = "pointwise"
    mixed_types = True
    header = "tm_quantize.h"
    tflm_opdata = {"QUANTIZE": "id" "iii", "DEQUANTIZE": "di" "iii"}

    def params(self, op: Op, graph: Graph) -> QuantizeParams | DequantizeParams:
        if op.kind == "DEQUANTIZE":
            s, zp = qparams(graph, op.inputs[0])
            return DequantizeParams(s, zp)
        out_t = graph.tensors[op.outputs[0]]
        if out_t.dtype not in INT_RANGE:
            raise TinymcuError(f"unsupported op QUANTIZE to {out_t.dtype} (op {op.index})")
        lo, hi = INT_RANGE[out_t.dtype]
        s_out, zp_out = qparams(graph, op.outputs[0])
        if graph.tensors[op.inputs[0]].dtype == "float32":
            return QuantizeParams(True, out_t.dtype, s_out, zp_out, 0, 0, 0, lo, hi)
        s_in, zp_in = qparams(graph, op.inputs[0])
        m, sh = quantize_multiplier(s_in / s_out)
        return QuantizeParams(False, out_t.dtype, s_out, zp_out, zp_in, m, sh, lo, hi)

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def inplace(self, op: Op, graph: Graph) -> bool:
        return (op.kind == "QUANTIZE"
                and graph.tensors[op.inputs[0]].dtype == graph.tensors[op.outputs[0]].dtype)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        p = self.params(op, graph)
        if isinstance(p, DequantizeParams):
            return [kernel.dequantize(p, x)]
        return [kernel.quantize(p, x)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.quantize.emit import emit_quantize
        return emit_quantize(unit, op, step, i)
