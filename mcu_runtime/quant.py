"""Fixed-point arithmetic of TFLite's int8 spec, vectorised over numpy int64.

TFLite (and TFLM, which shares ``kernels/internal``) requantizes with a Q31 multiplier plus a
power-of-two shift and the "double rounding" of gemmlowp: a saturating rounding doubling high
multiply followed by a rounding right shift. Every function here mirrors one C++ helper and
reproduces its int32 behaviour exactly — saturation of ``INT32_MIN * INT32_MIN``, rounding of
negative values away from zero, C's truncating division, int32 wrap-around where the C code
wraps — because a single ±1 difference breaks the bit-exact promise. Values are carried in
int64 so products of two int32 never overflow numpy; results are int64 arrays holding int32
values.

The gemmlowp fixed-point helpers needed by SOFTMAX and LOGISTIC (``exp_on_negative_values``,
``one_over_one_plus_x_for_x_in_0_1``, ``logistic``) live here too: they are the same
primitives composed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
INT16_MIN = -(2**15)
INT16_MAX = 2**15 - 1

IntLike = np.ndarray | int


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``QuantizeMultiplier``: ``real ≈ m · 2^(shift-31)`` with ``m`` in [2^30, 2^31).

    Uses frexp and round-half-away-from-zero (``TfLiteRound``) like quantization_util.cc, and
    its corner rules: a mantissa rounding up to 2^31 halves and bumps the shift, and shifts
    below -31 flush the multiplier to zero.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def _round_half_away(x: float) -> int:
    """C's ``std::round`` for a double: halves go away from zero."""
    r = math.floor(abs(x) + 0.5)
    # floor(|x| + 0.5) is exact for the magnitudes used here (|x| <= 2^31, a double has 53 bits)
    return int(math.copysign(r, x))


def round_half_away(x: npt.ArrayLike) -> np.ndarray:
    """Vectorised ``TfLiteRound`` on float arrays (numpy's ``round`` rounds half to even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def wrap32(x: IntLike) -> np.ndarray:
    """Reduce to int32 with two's-complement wrap-around, as C's int32 arithmetic does."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + 2**31) & 0xFFFFFFFF) - 2**31


def _trunc_div(a: np.ndarray, b: int) -> np.ndarray:
    """C integer division (truncates toward zero) of int64 arrays by a positive int."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def _srdhm(a: IntLike, b: IntLike, bits: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul for ``bits``-wide signed integers."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    half = 1 << (bits - 2)
    nudge = np.where(ab >= 0, half, 1 - half)
    high = _trunc_div(ab + nudge, 1 << (bits - 1))
    lowest = -(1 << (bits - 1))
    return np.where((a == b) & (a == lowest), -lowest - 1, high)


def srdhm(a: IntLike, b: IntLike) -> np.ndarray:
    """``SaturatingRoundingDoublingHighMul`` on int32: ``round(a·b / 2^31)``, saturating."""
    return _srdhm(a, b, 32)


def rounding_divide_by_pot(x: IntLike, exponent: IntLike) -> np.ndarray:
    """``RoundingDivideByPOT``: ``x / 2^exponent`` rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: IntLike, multiplier: IntLike, shift: IntLike) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier`` (double rounding): ``x · m · 2^(shift-31)``.

    A positive ``shift`` is a left shift of ``x`` before the high multiply (int32 in C, so it
    wraps); a negative one is a rounding right shift after it. ``multiplier``/``shift`` may be
    per-channel arrays broadcasting against ``x``.
    """
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = wrap32(np.asarray(x, dtype=np.int64) << left)
    return rounding_divide_by_pot(srdhm(shifted, multiplier), right)


def multiply_by_quantized_multiplier_64(x: IntLike, multiplier: IntLike, shift: IntLike
                                        ) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int64_t x, ...)`` of the 16x8 kernels: the multiplier
    reduced to 16 bits (rounded, 0x7FFF at the top), one rounding shift by ``15 - shift``."""
    m = np.asarray(multiplier, dtype=np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, dtype=np.int64)
    return (np.asarray(x, dtype=np.int64) * reduced + (np.int64(1) << (total - 1))) >> total


def srdhm16(a: IntLike, b: IntLike) -> np.ndarray:
    """int16 ``SaturatingRoundingDoublingHighMul`` (gemmlowp's int16 overload)."""
    return _srdhm(a, b, 16)


def sdhm16(a: IntLike, b: IntLike) -> np.ndarray:
    """int16 ``SaturatingDoublingHighMul`` (no rounding nudge), used by HARD_SWISH."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    high = _trunc_div(a * b, 1 << 15)
    overflow = (a == b) & (a == INT16_MIN)
    return np.where(overflow, INT16_MAX, high)


def saturating_left_shift16(x: IntLike, amount: int) -> np.ndarray:
    """``SaturatingLeftShift`` on int16: shift, then clamp to the int16 range."""
    return np.clip(np.asarray(x, dtype=np.int64) << amount, INT16_MIN, INT16_MAX)


def activation_range(activation: str, scale: float, zero_point: int,
                     limits: tuple[int, int] = (-128, 127)) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: the clamp a fused activation implies within
    the output type's ``limits`` (int8 unless given).

    ``f / scale`` is evaluated in float32 like the C++ lambda (float operands).
    """
    def quantize(f: float) -> int:
        q = np.float32(f) / np.float32(scale)
        return int(zero_point) + int(round_half_away(q))

    lo, hi = limits
    if activation == "RELU":
        return max(lo, quantize(0.0)), hi
    if activation == "RELU6":
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    if activation == "RELU_N1_TO_1":
        return max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    return lo, hi


# --- gemmlowp fixed point --------------------------------------------------------------------

def saturating_rounding_mul_by_pot(x: IntLike, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on int32 raws."""
    x = np.asarray(x, dtype=np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    out = wrap32(x << exponent)
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def rescale(x: IntLike, src_int_bits: int, dst_int_bits: int) -> np.ndarray:
    """gemmlowp ``Rescale<dst>`` of a raw with ``src`` integer bits."""
    return saturating_rounding_mul_by_pot(x, src_int_bits - dst_int_bits)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))  # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_mul_by_pot(x4, -2)
    poly = saturating_rounding_mul_by_pot(
        wrap32(srdhm(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), -1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: IntLike, int_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values`` of a Q(int_bits) raw; result Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - int_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = wrap32((a & mask) - one_quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, int_bits, 0))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if int_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if int_bits > 5:
        clamp = -(1 << (36 - int_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: IntLike) -> np.ndarray:
    """gemmlowp ``one_over_one_plus_x_for_x_in_0_1``: Newton-Raphson 1/(1+a), Q0.31 in/out."""
    a = np.asarray(a, dtype=np.int64)
    s = a + INT32_MAX  # RoundingHalfSum(a, One) in int64
    half_denominator = _trunc_div(s + np.where(s >= 0, 1, -1), 2)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    one_q2 = 1 << 29
    x = wrap32(constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17))
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap32(one_q2 - half_denominator_times_x)
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return rescale(x >> 1, 2, 0)


def logistic(a: IntLike, int_bits: int) -> np.ndarray:
    """gemmlowp ``logistic`` of a Q(int_bits) raw; result Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    positive = a > 0
    abs_a = np.where(positive, a, wrap32(-a))
    on_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(wrap32(-abs_a), int_bits))
    on_negative = wrap32(INT32_MAX - on_positive)
    out = np.where(positive, on_positive, on_negative)
    return np.where(a == 0, 1 << 30, out)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a: IntLike) -> np.ndarray:
    """gemmlowp ``one_minus_x_over_one_plus_x_for_x_in_0_1``: (1-a)/(1+a), Q0.31 in/out
    (Newton-Raphson in Q2.29, as ``one_over_one_plus_x_for_x_in_0_1``)."""
    a = np.asarray(a, dtype=np.int64)
    s = a + INT32_MAX
    half_denominator = _trunc_div(s + np.where(s >= 0, 1, -1), 2)
    one_q2 = 1 << 29
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = wrap32(one_q2 - srdhm(half_denominator, x))
        x = wrap32(x + rescale(srdhm(x, one_minus), 4, 2))
    return rescale(wrap32(x - one_q2), 2, 0)


def tanh(a: IntLike, int_bits: int) -> np.ndarray:
    """gemmlowp ``tanh`` of a Q(int_bits) raw; result Q0.31: ``-|a|`` goes through
    ``neg_tanh_on_negative_values`` (``exp`` of ``2·(-|a|)``, same raw with one more integer
    bit), the sign is restored and tanh(0) is exactly 0."""
    a = np.asarray(a, dtype=np.int64)
    negative = a < 0
    n = np.where(negative, a, wrap32(-a))
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, int_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap32(-t), t))


def inv_sqrt_quantized_multiplier_exp(x: int, reverse_shift: int) -> tuple[int, int]:
    """TFLite ``GetInvSqrtQuantizedMultiplierExp`` of one int32: 1/sqrt(x) as (multiplier,
    shift), by 5 Newton-Raphson steps in Q3.28 from x = 1 (x <= 1 gives INT32_MAX, 0)."""
    if x <= 1:
        return INT32_MAX, 0
    shift = 11
    while x >= 1 << 29:
        x //= 4
        shift += 1
    pairs = (32 - x.bit_length() - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs

    def mul(a: int, b: int) -> int:
        return int(srdhm(a, b))

    half_input = int(saturating_rounding_mul_by_pot(x >> 1, -1))
    half_three = (1 << 28) + (1 << 27)
    v = 1 << 28
    for _ in range(5):
        x3 = int(saturating_rounding_mul_by_pot(mul(mul(v, v), v), 6))
        v = int(saturating_rounding_mul_by_pot(
            int(wrap32(mul(half_three, v) - mul(half_input, x3))), 3))
    v = mul(v, 1518500250)
    if shift < 0:
        v = int(wrap32(v << -shift))
        shift = 0
    return v, shift * reverse_shift


def get_reciprocal(x: IntLike, x_int_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: (1/x as Q0.31 scaled, num_bits_over_unit), elementwise."""
    x = np.asarray(x, dtype=np.int64)
    ux = x & 0xFFFFFFFF
    headroom_plus_one = np.array([32 - int(v).bit_length() for v in np.ravel(ux)],
                                 dtype=np.int64).reshape(ux.shape)
    num_bits_over_unit = x_int_bits - headroom_plus_one
    shifted = ((ux << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    shifted_sum_minus_one = wrap32(shifted)
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit

