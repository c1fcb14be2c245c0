"""Activations on int8, as TFLM's reference kernels compute them: LOGISTIC, HARD_SWISH,
SOFTMAX, and standalone (unfused) RELU and RELU6.

None of them uses floating point at run time:

* RELU requantizes ``q - zp_in`` by ``s_in/s_out`` and clamps at the quantized 0.
  RELU6 in TFLM only clamps the *input* codes to [zp_in, zp_in + round(6/s_in)] and keeps
  them, ignoring the output quantization; TFLite's BUILTIN_REF requantizes like RELU. The
  two agree when input and output quantization match (as the converter usually arranges);
  when they do not, we follow TFLM, the interpreter the firmware is checked against.
* LOGISTIC rescales ``q - zp`` to a Q4.27 fixed-point value (saturating to -128/127 outside
  the representable radius) and evaluates gemmlowp's fixed-point ``logistic``; the Q0.31
  result is rounded to the int8 output (scale 1/256, zero point -128).
* HARD_SWISH works in int16: the input is scaled by 2^7, a "relu-ish" factor in [0, 1] is
  derived with saturating shifts, and multiplied in with a *non-rounding* doubling high
  multiply (TFLite chose it to cancel the rounding bias of the first one).
* SOFTMAX subtracts the row maximum, scales the differences by beta·s_in into Q5.26, sums
  gemmlowp ``exp_on_negative_values`` in Q12.19, and multiplies by a Newton-Raphson
  reciprocal; differences below ``diff_min`` contribute nothing and output -128.

All are in place: each output depends only on its own input element (SOFTMAX: its own row,
read completely — max and sum — before the row is written).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import TinymcuError
from ..ir import Graph, Op
from ..schedule import Region
from .quant import (
    exp_on_negative_values,
    get_reciprocal,
    logistic,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
    rounding_divide_by_pot,
    saturating_left_shift16,
    sdhm16,
    srdhm,
    srdhm16,
    wrap32,
)

kinds = ("LOGISTIC", "HARD_SWISH", "SOFTMAX", "RELU", "RELU6")


def macs(op: Op, graph: Graph) -> int:
    return graph.tensors[op.outputs[0]].size


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    return True


def _qp(graph: Graph, t: int) -> tuple[float, int]:
    q = graph.tensors[t].quant
    return float(np.float32(q.scale.ravel()[0])), int(q.zero_point.ravel()[0])


def _input_radius(int_bits: int, left_shift: int) -> int:
    """``CalculateInputRadius``: largest |input| whose rescaled value stays representable."""
    return math.floor(((1 << int_bits) - 1) * (1 << (31 - int_bits)) / (1 << left_shift))


def _logistic(op: Op, graph: Graph, x: np.ndarray) -> np.ndarray:
    s_in, zp_in = _qp(graph, op.inputs[0])
    q, left_shift = math.frexp(s_in * float(1 << 27))
    multiplier = int(round_half_away(np.float64(q * (1 << 31))))
    radius = _input_radius(4, left_shift)
    d = x.astype(np.int64) - zp_in
    q4 = multiply_by_quantized_multiplier(d, multiplier, left_shift)
    y = rounding_divide_by_pot(logistic(q4, 4), 23) - 128
    y = np.clip(y, -128, 127)
    y = np.where(d <= -radius, -128, np.where(d >= radius, 127, y))
    return y.astype(np.int8)


def _relu(op: Op, graph: Graph, x: np.ndarray) -> np.ndarray:
    """RELU (``ReluQuantized``) and TFLM's RELU6 (``Relu6Quantized``: a clamp, see above)."""
    s_in, zp_in = _qp(graph, op.inputs[0])
    if op.kind == "RELU6":
        six = zp_in + int(round_half_away(np.float32(6.0) / np.float32(s_in)))
        return np.clip(x, zp_in, min(six, 127)).astype(np.int8)
    s_out, zp_out = _qp(graph, op.outputs[0])
    m, shift = quantize_multiplier(s_in / s_out)
    y = multiply_by_quantized_multiplier(x.astype(np.int64) - zp_in, m, shift) + zp_out
    return np.clip(y, max(-128, zp_out), 127).astype(np.int8)


def _downscale_to_int16(m: int) -> int:
    """``DownScaleInt32ToInt16Multiplier``: round a Q31 multiplier to Q15, saturating."""
    if m >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (m + (1 << 15)) >> 16


def _hard_swish(op: Op, graph: Graph, x: np.ndarray) -> np.ndarray:
    s_in, zp_in = _qp(graph, op.inputs[0])
    s_out, zp_out = _qp(graph, op.outputs[0])
    f32 = np.float32
    hires_scale = f32(1.0 / 128.0) * f32(s_in)  # the C++ prepare works in float32
    out_m, out_exp = quantize_multiplier(float(hires_scale / f32(s_out)))
    relu_m, relu_exp = quantize_multiplier(float(hires_scale / (f32(3.0) / f32(32768.0))))
    out_m16, relu_m16 = _downscale_to_int16(out_m), _downscale_to_int16(relu_m)
    hires = (x.astype(np.int64) - zp_in) * 128
    preshift = srdhm16(hires, out_m16)
    reluish = hires
    if relu_exp > 0:
        reluish = saturating_left_shift16(reluish, relu_exp - 1)
    reluish = srdhm16(reluish, relu_m16)
    if relu_exp > 0:
        reluish = saturating_left_shift16(reluish, 1)
    if relu_exp < 0:
        reluish = rounding_divide_by_pot(reluish, -relu_exp)
    reluish = (reluish + (1 << 15)) >> 1
    y = rounding_divide_by_pot(sdhm16(reluish, preshift), -out_exp) + zp_out
    return np.clip(y, -128, 127).astype(np.int8)


def _softmax(op: Op, graph: Graph, x: np.ndarray) -> np.ndarray:
    s_in, _ = _qp(graph, op.inputs[0])
    beta = float(op.attrs.get("beta", 1.0))
    real = min(beta * s_in * float(1 << 26), float((1 << 31) - 1))
    multiplier, left_shift = quantize_multiplier(real)
    diff_min = -_input_radius(5, left_shift)
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    use = diff >= diff_min
    scaled = srdhm(wrap32(diff << left_shift), multiplier)
    exps = exp_on_negative_values(scaled, 5)
    sum_of_exps = wrap32(np.where(use, rounding_divide_by_pot(exps, 12), 0).sum(
        axis=-1, keepdims=True))
    recip, bits_over_unit = get_reciprocal(sum_of_exps, 12)
    y = rounding_divide_by_pot(srdhm(recip, exps), bits_over_unit + 23) - 128
    y = np.where(use, np.clip(y, -128, 127), -128)
    return y.astype(np.int8)


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    if graph.tensors[op.outputs[0]].dtype != "int8":
        raise TinymcuError(f"unsupported op {op.kind} with {graph.tensors[op.outputs[0]].dtype} "
                           f"output (op {op.index}); only int8 is supported")
    fn = {"LOGISTIC": _logistic, "HARD_SWISH": _hard_swish, "SOFTMAX": _softmax,
          "RELU": _relu, "RELU6": _relu}[op.kind]
    return [fn(op, graph, inputs[0])]
