"""The numpy CONV_2D reference kernel and the int32 → int8 requantization conv-like ops share.

Padding with the input zero point makes padded taps contribute 0, as skipping them does in
TFLite's reference kernels. Sums are taken in float64, which is exact far beyond any int32
accumulator value of int8 products.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime import geometry
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.quant import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_64,
    wrap32,
)

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.conv import ConvParams


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_zp: int, lo: int,
               hi: int) -> np.ndarray:
    """int32 accumulator (channels last) → int8: rescale, add output zero point, clamp."""
    y = multiply_by_quantized_multiplier(wrap32(acc), mult, shift) + out_zp
    return np.clip(y, lo, hi).astype(np.int8)


def centred_input(op: Op, x: np.ndarray, p: ConvParams, pad: Pad | None, dtype: type
                  ) -> tuple[np.ndarray, tuple[int, int]]:
    """The padded input minus its zero point, and the output size."""
    full = pad if pad is not None else geometry.same_valid_pad(op, x.shape[1:3], p.kernel)
    out_hw = geometry.output_hw(x.shape[1:3], p.kernel, p.stride, p.dilation, full)
    xp: np.ndarray = geometry.pad_nhwc(x, full, p.in_zp).astype(dtype) - p.in_zp
    return xp, out_hw


def add_bias_and_requantize(acc: np.ndarray, bias: np.ndarray | None, p: ConvParams
                            ) -> np.ndarray:
    """int32 bias, per-channel fixed-point rescale, output zero point, activation clamp."""
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return requantize(acc, p.mult, p.shift, p.out_zp, p.act_min, p.act_max)


def conv2d(op: Op, p: ConvParams, inputs: list[np.ndarray | None], pad: Pad | None
           ) -> np.ndarray:
    x, w = inputs[0], np.asarray(inputs[1])
    assert x is not None
    oc = w.shape[0]
    xp, out_hw = centred_input(op, x, p, pad, np.float64)
    wf = w.astype(np.float64)
    acc = np.zeros((x.shape[0], *out_hw, oc), dtype=np.float64)
    for ky, kx, view in geometry.windows(xp, p.kernel, p.stride, p.dilation, out_hw):
        acc += view @ wf[:, ky, kx, :].T
    bias = inputs[2] if len(inputs) > 2 else None
    if x.dtype == np.int16:  # 16x8: int64 accumulator and bias, reduced multiplier
        acc64 = acc.astype(np.int64) + (np.asarray(bias, np.int64) if bias is not None else 0)
        y = multiply_by_quantized_multiplier_64(acc64, p.mult, p.shift) + p.out_zp
        return np.clip(y, p.act_min, p.act_max).astype(np.int16)
    return add_bias_and_requantize(acc.astype(np.int64), bias, p)
