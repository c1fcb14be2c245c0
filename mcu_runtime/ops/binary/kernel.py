"""The numpy reference kernels of the binary family (NumPy broadcasting, TFLM's int32
arithmetic; see the folder's docstring)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import get_reciprocal, rounding_divide_by_pot, srdhm, wrap32
from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier as mbqm

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.binary import BinaryParams

#: SQUARED_DIFFERENCE's left shift for int8 inputs (255² · 2^14 fits int32)
SQDIFF_LEFT_SHIFT = 7


def binary(p: BinaryParams, x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray:
    assert x is not None and y is not None
    if p.kind in ("MINIMUM", "MAXIMUM"):
        f = np.minimum if p.kind == "MINIMUM" else np.maximum
        return f(x, y).astype(np.result_type(x, y))
    a = x.astype(np.int64) - p.a_zp
    b = y.astype(np.int64) - p.b_zp
    if p.kind == "DIV":
        a, b = np.broadcast_arrays(a, b)
        a, b = np.where(b < 0, -a, a), np.abs(b)
        inv, bits_over_unit = get_reciprocal(np.maximum(b, 1), 31)
        headroom = count_leading_sign_bits(a)
        quotient = srdhm(wrap32(a << headroom), inv)
        r = div_rounding_shift(srdhm(quotient, p.out_mult),
                               headroom + bits_over_unit - p.out_shift)
        return np.clip(r + p.out_zp, p.act_min, p.act_max).astype(np.int8)
    if p.kind == "PRELU":
        a, b = np.broadcast_arrays(a, b)
        r = np.where(a >= 0, mbqm(a, p.a_mult, p.a_shift),
                     mbqm(wrap32(a * b), p.out_mult, p.out_shift))
    else:
        diff = (mbqm(a << SQDIFF_LEFT_SHIFT, p.a_mult, p.a_shift)
                - mbqm(b << SQDIFF_LEFT_SHIFT, p.b_mult, p.b_shift))
        r = mbqm(wrap32(diff * diff), p.out_mult, p.out_shift)
    return np.clip(r + p.out_zp, -128, 127).astype(np.int8)


def count_leading_sign_bits(x: np.ndarray) -> np.ndarray:
    """``CountLeadingSignBits`` of int32 values: redundant sign bits (31 for 0 and -1)."""
    u = np.where(x >= 0, x, -x - 1).astype(np.int64)
    bits = np.zeros(u.shape, np.int64)
    for k in range(31):
        bits += (u >> k) > 0
    return 31 - bits


def div_rounding_shift(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT(x, e)`` as TFLM's DIV really evaluates it.

    A tiny dividend gets a large headroom shift, so ``e`` can pass 31, where the C++ is
    undefined: the int32 mask ``(1ll << e) - 1`` truncates to -1 and the x86-64 shift
    instruction (the TFLM build we check against) uses ``e mod 32``, so the result is
    ``(x >> (e mod 32)) + (x >= 0)``. We reproduce that bit for bit.
    """
    e = np.asarray(e, np.int64)
    wide = (x >> (e & 31)) + (x >= 0)
    return np.where(e <= 31, rounding_divide_by_pot(x, np.minimum(e, 31)), wide)
