"""The numpy CONCATENATION kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.quant import round_half_away

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.concatenation import ConcatParams


def concatenation(p: ConcatParams, inputs: list[np.ndarray | None]) -> np.ndarray:
    parts = []
    for x, r in zip(inputs, p.rescale, strict=True):
        assert x is not None
        if r is None:
            parts.append(x)
            continue
        scale, bias = r
        v = round_half_away(x.astype(np.float32) * scale + bias).astype(np.int64) + p.out_zp
        parts.append(np.clip(v, -128, 127).astype(x.dtype))
    return np.concatenate(parts, axis=p.axis)
