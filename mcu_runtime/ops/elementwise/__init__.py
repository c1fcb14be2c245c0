"""ADD, SUB and MUL on int8 with broadcasting (TFLite reference integer kernels).

ADD/SUB bring both inputs onto a common scale first: each offset-corrected input is shifted
left by 20 bits and scaled by ``s_i / (2·max(s1, s2))``, the scaled values are summed (or
subtracted), then rescaled to the output by ``2·max(s1, s2) / (2^20 · s_out)``. TFLM computes
the three real multipliers in double for ADD but in float32 for SUB; we follow each.
MUL multiplies the offset-corrected inputs and rescales once by ``s1·s2/s_out``.

All three are in place: output element i depends only on input element i, so the output may
overwrite input 0 (when the shapes match; a broadcast input is never the one overwritten).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import plain_int, register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.conv import act_clamp
from tinymcu.mcu_runtime.ops.elementwise import kernel
from tinymcu.mcu_runtime.ops.elementwise.kernel import LEFT_SHIFT
from tinymcu.mcu_runtime.quant import quantize_multiplier


@dataclass(frozen=True)
class ElementwiseParams:
    """Zero points, the (multiplier, shift) pairs and the clamp. ADD/SUB: ``a_*``/``b_*``
    bring the inputs onto the common scale, ``out_*`` rescales the sum; MUL: only ``out_*``
    (the ``a_*``/``b_*`` pairs are 0)."""

    kind: str
    a_zp: int
    b_zp: int
    out_zp: int
    a_mult: int
    a_shift: int
    b_mult: int
    b_shift: int
    out_mult: int
    out_shift: int
    act_min: int
    act_max: int


def _add_multipliers(kind: str, s1: float, s2: float, so: float) -> list[tuple[int, int]]:
    if kind == "ADD":
        twice_max = 2 * max(s1, s2)
        reals = [s1 / twice_max, s2 / twice_max, twice_max / ((1 << LEFT_SHIFT) * so)]
    else:
        f32 = np.float32
        tm = f32(2) * f32(max(s1, s2))
        reals = [float(f32(s1) / tm), float(f32(s2) / tm),
                 float(tm / (f32(1 << LEFT_SHIFT) * f32(so)))]
    return [quantize_multiplier(r) for r in reals]


@register
class Elementwise(OpDef):
    kinds = ("ADD", "SUB", "MUL")
    options_type = {"ADD": 11, "MUL": 21, "SUB": 28}
    tiling = "pointwise"
    tflm_opdata = {"ADD": "b" + "i" * 14,  # OpDataAdd
                   "SUB": "b" + "i" * 12,  # OpDataSub
                   "MUL": "i" * 9}         # OpDataMul
    tflm_options = {"ADD": 8, "SUB": 8, "MUL": 4}
    header = "tm_eltwise.h"
    #: int32 only on the unquantized path (``ops.plain_int``)
    activation_dtypes = ("int8", "int32")

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        plain = plain_int.is_plain(ins, outs)
        if not plain:
            plain_int.check_not_int32(ins, outs)
        try:
            shape = np.broadcast_shapes(ins[0].shape, ins[1].shape)
        except ValueError:
            raise d.OpError(f"input shapes {ins[0].shape} and {ins[1].shape} do not "
                            f"broadcast") from None
        d.need(outs[0].shape == shape, f"output shape {outs[0].shape} should be {shape}")
        return {"activation": d.activation(opts, 0), **({"plain": True} if plain else {})}

    def params(self, op: Op, graph: Graph) -> ElementwiseParams | plain_int.PlainIntParams:
        if op.attrs.get("plain"):
            return plain_int.params(op.kind, op.attrs["activation"])
        (s1, a_zp), (s2, b_zp) = qparams(graph, op.inputs[0]), qparams(graph, op.inputs[1])
        so, out_zp = qparams(graph, op.outputs[0])
        lo, hi = act_clamp(op, graph)
        if op.kind == "MUL":
            pairs = [(0, 0), (0, 0), quantize_multiplier(s1 * s2 / so)]
        else:
            pairs = _add_multipliers(op.kind, s1, s2, so)
        (am, ash), (bm, bsh), (om, osh) = pairs
        return ElementwiseParams(op.kind, a_zp, b_zp, out_zp, am, ash, bm, bsh, om, osh, lo, hi)

    def inplace(self, op: Op, graph: Graph) -> bool:
        return graph.tensors[op.inputs[0]].shape == graph.tensors[op.outputs[0]].shape

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        p = self.params(op, graph)
        if isinstance(p, plain_int.PlainIntParams):
            return [plain_int.run(p, inputs[0], inputs[1])]
        return [kernel.elementwise(p, inputs[0], inputs[1])]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        if op.attrs.get("plain"):
            return plain_int.emit(unit, op, step)
        from tinymcu.mcu_runtime.ops.elementwise.emit import emit_elementwise
        return emit_elementwise(unit, op, step, i)
