"""The numpy ADD/SUB/MUL reference kernel (int64, wrapped to int32 where TFLite wraps)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier, wrap32

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.elementwise import ElementwiseParams

LEFT_SHIFT = 20


def elementwise(p: ElementwiseParams, x: np.ndarray | None, y: np.ndarray | None
                ) -> np.ndarray:
    assert x is not None and y is not None
    a = x.astype(np.int64) - p.a_zp
    b = y.astype(np.int64) - p.b_zp
    if p.kind == "MUL":
        r = multiply_by_quantized_multiplier(wrap32(a * b), p.out_mult, p.out_shift) + p.out_zp
    else:
        a = multiply_by_quantized_multiplier(a << LEFT_SHIFT, p.a_mult, p.a_shift)
        b = multiply_by_quantized_multiplier(b << LEFT_SHIFT, p.b_mult, p.b_shift)
        raw = wrap32(a + b) if p.kind == "ADD" else wrap32(a - b)
        r = multiply_by_quantized_multiplier(raw, p.out_mult, p.out_shift) + p.out_zp
    return np.clip(r, p.act_min, p.act_max).astype(np.int8)
