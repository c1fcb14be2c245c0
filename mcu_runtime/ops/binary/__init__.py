"""Binary int8 ops with NumPy-style broadcasting that TFLM computes element by element:
MINIMUM, MAXIMUM, SQUARED_DIFFERENCE, PRELU and DIV.

TFLM's ``maximum_minimum.cc`` (``reference_ops::MaximumMinimumBroadcastSlow``) compares the
raw stored codes of the two inputs and stores the winner: there is no requantization, and
the input/output quantization is not even checked (the converter gives both inputs and the
output one scale and zero point, inserting a requantizing QUANTIZE where needed). We do
the same, so the result is right for any dtype TFLM accepts.

SQUARED_DIFFERENCE (``squared_difference.cc``) is ADD's recipe with a 7-bit left shift:
both offset-corrected inputs are brought onto ``2·max(s1, s2)`` (multipliers computed in
double), their difference is squared in int32 and rescaled by
``(2·max)^2 / (2^14·s_out)``. PRELU (``prelu_common.cc``): ``q - zp_in`` >= 0 is rescaled
by ``s_in/s_out``, otherwise multiplied by ``alpha - zp_alpha`` and rescaled by
``s_in·s_alpha/s_out``; ``alpha`` (usually a per-channel constant) broadcasts like any
second operand. DIV (``reference_ops::DivElementwise``): the divisor's sign moves to the
dividend, its reciprocal comes from ``GetReciprocal`` (gemmlowp's Newton-Raphson
``one_over_one_plus_x``), the dividend is pre-shifted by its leading sign bits, and the
quotient is rescaled once by ``s1/(s2·s_out)`` (float32 in TFLM) with the leftover shift;
the fused activation clamps. For tiny dividends the final shift passes 31, undefined in
TFLM's C++: we reproduce what its x86-64 build computes (``kernel.div_rounding_shift``).
A zero divisor is undefined in TFLM (a debug check): the
emulator refuses it, the C saturates by the dividend's sign.

Broadcasting follows TFLite (right-aligned shapes, size-1 dims stretch). The C kernel walks
the output as an up-to-4-D strided view with a zero stride on every broadcast axis of an
input, so the same call serves whole tensors, patch tiles (boxes with the holder's row
stride) and constant operands (per-channel vectors, scalars).

In place: output element i depends only on input element i of the same position, so when
input 0 has the output's shape the output may overwrite it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import plain_int, register
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.ops.binary import kernel
from tinymcu.mcu_runtime.ops.binary.kernel import SQDIFF_LEFT_SHIFT
from tinymcu.mcu_runtime.ops.conv import act_clamp
from tinymcu.mcu_runtime.quant import quantize_multiplier


@dataclass(frozen=True)
class BinaryParams:
    """MINIMUM/MAXIMUM: only ``kind`` (TFLM has no quantization constants; the rest 0).
    SQUARED_DIFFERENCE: ``a_*``/``b_*`` bring the inputs onto the common scale, ``out_*``
    rescales the square. PRELU: ``a_*`` rescales non-negative inputs, ``out_*`` the
    products with alpha."""

    kind: str
    a_zp: int = 0
    b_zp: int = 0
    out_zp: int = 0
    a_mult: int = 0
    a_shift: int = 0
    b_mult: int = 0
    b_shift: int = 0
    out_mult: int = 0
    out_shift: int = 0
    act_min: int = -128
    act_max: int = 127


def broadcast_decode(ins: list, outs: list) -> None:
    """Two inputs whose shapes broadcast to the output's (TFLite's rule)."""
    d.arity(ins, outs, 2, 2, required=2)
    try:
        shape = np.broadcast_shapes(ins[0].shape, ins[1].shape)
    except ValueError:
        raise d.OpError(f"input shapes {ins[0].shape} and {ins[1].shape} do not "
                        f"broadcast") from None
    d.need(outs[0].shape == shape, f"output shape {outs[0].shape} should be {shape}")
    d.need(ins[0].dtype == ins[1].dtype == outs[0].dtype,
           f"input and output types differ ({ins[0].dtype}, {ins[1].dtype}, "
           f"{outs[0].dtype})")


@register
class Binary(OpDef):
    kinds = ("MINIMUM", "MAXIMUM", "SQUARED_DIFFERENCE", "PRELU", "DIV")
    options_type = {"DIV": 29}
    tiling = "pointwise"
    # MAXIMUM/MINIMUM have no init (no OpData); PRELU keeps PreluParams; SQUARED_DIFFERENCE
    # a bool and ArithmeticParams; none has a builtin options struct
    tflm_opdata = {"MINIMUM": "", "MAXIMUM": "", "PRELU": "i" * 7, "DIV": "i" * 7,
                   "SQUARED_DIFFERENCE": "b" "c" + "i" * 15 + "dd" + "i" * 5}
    tflm_options = {"DIV": 4}  # TfLiteDivParams: the fused activation
    header = "tm_binary.h"
    #: int32 only on the unquantized path (``ops.plain_int``)
    activation_dtypes = ("int8", "int32")

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        broadcast_decode(ins, outs)
        attrs = {"activation": d.activation(opts, 0)} if kind == "DIV" else {}
        if plain_int.is_plain(ins, outs):
            d.need(kind in ("MINIMUM", "MAXIMUM", "DIV"),
                   f"{kind} on plain int32 is not supported")
            return {**attrs, "plain": True}
        plain_int.check_not_int32(ins, outs)
        return attrs

    def params(self, op: Op, graph: Graph) -> BinaryParams | plain_int.PlainIntParams:
        if op.attrs.get("plain"):
            return plain_int.params(op.kind, op.attrs.get("activation", "NONE"))
        if op.kind in ("MINIMUM", "MAXIMUM"):
            return BinaryParams(op.kind)
        (s1, zp1), (s2, zp2) = qparams(graph, op.inputs[0]), qparams(graph, op.inputs[1])
        so, zpo = qparams(graph, op.outputs[0])
        if op.kind == "DIV":
            f32 = np.float32
            m, shift = quantize_multiplier(float(f32(s1) / (f32(s2) * f32(so))))
            lo, hi = act_clamp(op, graph)
            return BinaryParams(op.kind, zp1, zp2, zpo, 0, 0, 0, 0, m, shift, lo, hi)
        if op.kind == "PRELU":
            (m1, sh1), (m2, sh2) = quantize_multiplier(s1 / so), quantize_multiplier(
                s1 * s2 / so)
            return BinaryParams(op.kind, zp1, zp2, zpo, m1, sh1, 0, 0, m2, sh2)
        twice_max = 2.0 * max(s1, s2)
        (am, ash), (bm, bsh) = quantize_multiplier(s1 / twice_max), quantize_multiplier(
            s2 / twice_max)
        om, osh = quantize_multiplier(
            twice_max * twice_max / float(np.float32((1 << 2 * SQDIFF_LEFT_SHIFT) * so)))
        return BinaryParams(op.kind, zp1, zp2, zpo, am, ash, bm, bsh, om, osh)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        p = self.params(op, graph)
        if isinstance(p, plain_int.PlainIntParams):
            return [plain_int.run(p, inputs[0], inputs[1])]
        if op.kind == "DIV" and inputs[1] is not None and (inputs[1] == p.b_zp).any():
            raise TinymcuError(f"op {op.index} DIV by zero (a divisor code equal to its zero "
                               f"point {p.b_zp}); TFLM's result is undefined there")
        return [kernel.binary(p, inputs[0], inputs[1])]

    def inplace(self, op: Op, graph: Graph) -> bool:
        return graph.tensors[op.inputs[0]].shape == graph.tensors[op.outputs[0]].shape

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        if op.attrs.get("plain"):
            return plain_int.emit(unit, op, step)
        from tinymcu.mcu_runtime.ops.binary.emit import emit_binary
        return emit_binary(unit, op, step, i)
