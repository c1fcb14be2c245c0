"""Pointwise int8 activations as TFLM's reference kernels compute them: LOGISTIC, TANH,
HARD_SWISH, LEAKY_RELU, ELU, ABS, and standalone (unfused) RELU, RELU6 and RELU_N1_TO_1.

None of them uses floating point at run time; the C runtime runs each as an exact 256-entry
look-up table made by running this kernel on every int8 value.

* RELU requantizes ``q - zp_in`` by ``s_in/s_out`` and clamps at the quantized 0.
  RELU6 in TFLM only clamps the *input* codes to [zp_in, zp_in + round(6/s_in)] and keeps
  them, ignoring the output quantization; TFLite's BUILTIN_REF requantizes like RELU. The
  two agree when input and output quantization match (as the converter usually arranges);
  when they do not, we follow TFLM, the interpreter the firmware is checked against.
* RELU_N1_TO_1 (TFLM has no kernel for it; TFLite's ``Relu1Eval``/``QuantizedReluX(-1, 1)``)
  requantizes like RELU and clamps to [zp_out + round(-1/s_out), zp_out + round(1/s_out)]
  (float32 ``roundf``), within int8.
* LOGISTIC rescales ``q - zp`` to a Q4.27 fixed-point value (saturating to -128/127 outside
  the representable radius) and evaluates gemmlowp's fixed-point ``logistic``; the Q0.31
  result is rounded to the int8 output (scale 1/256, zero point -128).
* TANH (``reference_integer_ops::Tanh``) is LOGISTIC's twin: the same Q4.27 input
  rescale and radius, gemmlowp's fixed-point ``tanh``, the Q0.31 result rounded by 2^24;
  like TFLM it assumes the converter's output quantization (scale 1/128, zero point 0).
* LEAKY_RELU (``QuantizeLeakyRelu``) requantizes ``q - zp`` by ``s_in/s_out`` when it is
  >= 0 and by ``s_in·alpha/s_out`` otherwise; TFLM computes both ratios in float32.
* ELU: TFLM itself runs a 256-entry table, made in float32 (``PopulateLookupTable``:
  dequantize, ``exp(x) - 1`` below 0, ``round(y / s_out) + zp``); ``params()`` builds the
  same table, so the kernel is the look-up.
* RSQRT (``RsqrtEvalQuantized``): 1/sqrt(q - zp_in) from TFLite's fixed-point
  ``GetInvSqrtQuantizedMultiplierExp``, applied to 1 with 20 guard bits, rescaled by
  ``1/(sqrt(s_in)·s_out)``; ``q == zp_in`` gives 127. TFLM fails the invoke on an input
  below its zero point; so does the emulator, and the C table saturates those codes to 127.
* EXP, LOG, SQRT: TFLM runs them in float32 only; TFLite's int8 kernels (our oracle for
  them, BUILTIN_REF) use ``LUTPopulate``, the same float32 table recipe as ELU with
  ``expf``/``logf``/``sqrtf``. A non-finite value (log of 0 or below) converts to INT32_MIN
  on x86-64 and saturates to -128. SQRT's table truncates ``y / s_out`` instead of rounding
  it (what BUILTIN_REF computes on every code). TFLite refuses SQRT of a negative code (the
  emulator too; the C table holds -128 there).
* ABS (``AbsEvalQuantized``): ``|q - zp_in|``, requantized by ``s_in/s_out`` only when the
  float32 scales differ, plus ``zp_out``, saturated.
* HARD_SWISH works in int16: the input is scaled by 2^7, a "relu-ish" factor in [0, 1] is
  derived with saturating shifts, and multiplied in with a *non-rounding* doubling high
  multiply (TFLite chose it to cancel the rounding bias of the first one).

All are in place: each output depends only on its own input element.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.activation import kernel
from tinymcu.mcu_runtime.ops.base import OpDef, qparams
from tinymcu.mcu_runtime.quant import (
    inv_sqrt_quantized_multiplier_exp,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
)


@dataclass(frozen=True)
class ReluParams:
    """RELU/RELU_N1_TO_1: requantize by (mult, shift) then clamp; RELU6: clamp the input
    codes only (``requantize`` False)."""

    requantize: bool
    in_zp: int
    out_zp: int
    mult: int
    shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class LogisticParams:
    in_zp: int
    multiplier: int
    left_shift: int
    radius: int


@dataclass(frozen=True)
class TanhParams:
    in_zp: int
    multiplier: int
    left_shift: int
    radius: int


@dataclass(frozen=True)
class LeakyReluParams:
    """``q - in_zp`` >= 0 is rescaled by (id_mult, id_shift), else by (alpha_mult,
    alpha_shift); ``out_zp`` is added and the result saturated."""

    in_zp: int
    out_zp: int
    id_mult: int
    id_shift: int
    alpha_mult: int
    alpha_shift: int


@dataclass(frozen=True)
class AbsParams:
    in_zp: int
    out_zp: int
    rescale: bool
    mult: int
    shift: int


@dataclass(frozen=True)
class TableParams:
    """A 256-entry table indexed by ``q + 128``: the one TFLM itself builds (ELU), or
    TFLM's per-element formula on every code (RSQRT). Codes below ``valid_from`` make
    TFLite/TFLM fail the invoke: the emulator refuses them, the C table keeps the entry
    the recipe gives (127 for RSQRT, -128 for SQRT)."""

    table: tuple[int, ...]
    valid_from: int = -128


#: RSQRT's guard bits (TFLM's ``kShift``)
RSQRT_SHIFT = 20


@dataclass(frozen=True)
class HardSwishParams:
    in_zp: int
    out_zp: int
    out_mult16: int
    out_exp: int
    relu_mult16: int
    relu_exp: int


def input_radius(int_bits: int, left_shift: int) -> int:
    """``CalculateInputRadius``: largest |input| whose rescaled value stays representable."""
    return math.floor(((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift))


def _downscale_to_int16(m: int) -> int:
    """``DownScaleInt32ToInt16Multiplier``: round a Q31 multiplier to Q15, saturating."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def _roundf(x: np.float32) -> int:
    return int(round_half_away(np.asarray(x, dtype=np.float32)))


def rsqrt_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> tuple[int, ...]:
    """TFLM's ``RsqrtEvalQuantized`` for every code (127 below the zero point)."""
    mult, shift = quantize_multiplier(1.0 / (math.sqrt(s_in) * s_out))
    out = []
    for val in range(-128, 128):
        v = val - zp_in
        if v <= 0:
            out.append(127)
            continue
        inv_m, inv_s = inv_sqrt_quantized_multiplier_exp(v, -1)
        data = int(multiply_by_quantized_multiplier(1, inv_m, inv_s + RSQRT_SHIFT))
        y = int(multiply_by_quantized_multiplier(data, mult, shift - RSQRT_SHIFT)) + zp_out
        out.append(min(max(y, -128), 127))
    return tuple(out)


def _f32(f: Any) -> Any:
    """A float32 libm function (``expf``...): the double result rounded to float32."""
    def g(x: np.float32) -> np.float32:
        with np.errstate(all="ignore"):
            return np.float32(f(np.float64(x)))
    return g


#: the float32 transform of each table-built op (TFLM's ELU, TFLite's EXP/LOG/SQRT)
TRANSFORMS = {
    "ELU": lambda x: np.float32(_f32(np.exp)(x) - np.float32(1)) if x < 0 else x,
    "EXP": _f32(np.exp),
    "LOG": _f32(np.log),
    "SQRT": _f32(np.sqrt),
}


#: table-built ops whose quantization truncates instead of rounding
TRUNCATING = frozenset({"SQRT"})


def float_table(kind: str, s_in: float, zp_in: int, s_out: float, zp_out: int
                ) -> tuple[int, ...]:
    """``PopulateLookupTable``/``LUTPopulate``: dequantize, transform, ``round(y / s_out)
    + zp`` step by step in float32; a non-finite or out-of-range value becomes INT32_MIN
    (x86-64's float-to-int conversion) and saturates to -128."""
    f32 = np.float32
    inverse_scale = f32(1) / f32(s_out)
    out = []
    for val in range(-128, 128):
        y = TRANSFORMS[kind](f32(s_in) * f32(val - zp_in))
        with np.errstate(all="ignore"):
            r = f32(y * inverse_scale)
        if not np.isfinite(r) or abs(float(r)) >= 2.0**31:
            out.append(-128)
            continue
        q = (int(r) if kind in TRUNCATING else _roundf(r)) + zp_out
        out.append(min(max(q, -128), 127))
    return tuple(out)


AnyParams = (ReluParams | LogisticParams | TanhParams | HardSwishParams | LeakyReluParams
             | AbsParams | TableParams)


@register
class Activation(OpDef):
    kinds = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "ELU", "ABS", "RSQRT", "EXP",
             "LOG", "SQRT", "RELU", "RELU6", "RELU_N1_TO_1")
    options_type = {"LEAKY_RELU": 75}
    tiling = "pointwise"
    # TFLM has no int8 RELU_N1_TO_1, EXP, LOG or SQRT kernel, so no arena model either
    tflm_opdata = {"LOGISTIC": "iiii", "TANH": "iiii", "HARD_SWISH": "i" * 5,
                   "LEAKY_RELU": "i" * 6,   # LeakyReluOpData
                   "ELU": "c" * 256,        # the int8 table
                   "ABS": "iiiibii",        # OpDataAbsRsqrt
                   "RSQRT": "iiiibii",
                   "RELU": "i" * 7, "RELU6": "i" * 7}
    tflm_options = {"LEAKY_RELU": 4}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        attrs = d.unary(ins, outs, opts)
        if kind == "LEAKY_RELU":
            attrs["alpha"] = float(opts.scalar(0, "float32", 0.0)) if opts else 0.0
        return attrs

    def params(self, op: Op, graph: Graph) -> AnyParams:
        s_in, zp_in = qparams(graph, op.inputs[0])
        if op.kind in ("LOGISTIC", "TANH"):
            q, left_shift = math.frexp(s_in * float(1 << 27))
            mult = int(round_half_away(np.asarray(q * (1 << 31))))
            cls = LogisticParams if op.kind == "LOGISTIC" else TanhParams
            return cls(zp_in, mult, left_shift, input_radius(4, left_shift))
        s_out, zp_out = qparams(graph, op.outputs[0])
        f32 = np.float32
        if op.kind == "LEAKY_RELU":
            alpha = f32(op.attrs.get("alpha", 0.0))
            am, ash = quantize_multiplier(float(f32(s_in) * alpha / f32(s_out)))
            im, ish = quantize_multiplier(float(f32(s_in) / f32(s_out)))
            return LeakyReluParams(zp_in, zp_out, im, ish, am, ash)
        if op.kind in TRANSFORMS:
            return TableParams(float_table(op.kind, s_in, zp_in, s_out, zp_out),
                               zp_in if op.kind == "SQRT" else -128)
        if op.kind == "RSQRT":
            return TableParams(rsqrt_table(s_in, zp_in, s_out, zp_out), zp_in)
        if op.kind == "ABS":
            rescale = f32(s_in) != f32(s_out)
            m, shift = quantize_multiplier(s_in / s_out) if rescale else (0, 0)
            return AbsParams(zp_in, zp_out, bool(rescale), m, shift)
        if op.kind == "RELU6":
            six = zp_in + _roundf(np.float32(6.0) / np.float32(s_in))
            return ReluParams(False, zp_in, zp_out, 0, 0, zp_in, min(six, 127))
        if op.kind in ("RELU", "RELU_N1_TO_1"):
            m, shift = quantize_multiplier(s_in / s_out)
            if op.kind == "RELU":
                lo, hi = max(-128, zp_out), 127
            else:
                lo = max(-128, zp_out + _roundf(np.float32(-1.0) / np.float32(s_out)))
                hi = min(127, zp_out + _roundf(np.float32(1.0) / np.float32(s_out)))
            return ReluParams(True, zp_in, zp_out, m, shift, lo, hi)
        hires_scale = f32(1.0 / 128.0) * f32(s_in)  # the C++ prepare works in float32
        out_m, out_exp = quantize_multiplier(float(hires_scale / f32(s_out)))
        relu_m, relu_exp = quantize_multiplier(float(hires_scale / (f32(3.0) / f32(32768.0))))
        return HardSwishParams(zp_in, zp_out, _downscale_to_int16(out_m), out_exp,
                               _downscale_to_int16(relu_m), relu_exp)

    def inplace(self, op: Op, graph: Graph) -> bool:
        return True

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        if graph.tensors[op.outputs[0]].dtype != "int8":
            raise TinymcuError(f"unsupported op {op.kind} with "
                               f"{graph.tensors[op.outputs[0]].dtype} output (op {op.index}); "
                               f"only int8 is supported")
        x = inputs[0]
        assert x is not None
        p = self.params(op, graph)
        if isinstance(p, LogisticParams):
            return [kernel.logistic(p, x)]
        if isinstance(p, TanhParams):
            return [kernel.tanh(p, x)]
        if isinstance(p, LeakyReluParams):
            return [kernel.leaky_relu(p, x)]
        if isinstance(p, AbsParams):
            return [kernel.absolute(p, x)]
        if isinstance(p, TableParams):
            if x.size and int(x.min()) < p.valid_from:
                raise TinymcuError(f"op {op.index} {op.kind}: input code {int(x.min())} is "
                                   f"below zero point {p.valid_from}; TFLite/TFLM fail the "
                                   f"invoke (only defined for non-negative values)")
            return [np.asarray(p.table, np.int8)[x.astype(np.int64) + 128]]
        if isinstance(p, HardSwishParams):
            return [kernel.hard_swish(p, x)]
        return [kernel.relu(p, x)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.codegen.emitters import emit_lut
        p = self.params(op, unit.graph)
        return emit_lut(unit, op, step, i, p.table if isinstance(p, TableParams) else None)
