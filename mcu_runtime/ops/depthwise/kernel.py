"""The numpy DEPTHWISE_CONV_2D reference kernel (int64 sums, exact)."""

from __future__ import annotations

import numpy as np

from tinymcu.mcu_runtime import geometry
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops.conv import ConvParams
from tinymcu.mcu_runtime.ops.conv.kernel import add_bias_and_requantize, centred_input


def depthwise(op: Op, p: ConvParams, inputs: list[np.ndarray | None], pad: Pad | None
              ) -> np.ndarray:
    x, w = inputs[0], np.asarray(inputs[1])
    assert x is not None
    oc = w.shape[3]
    mult_d = oc // x.shape[-1]
    xp, out_hw = centred_input(op, x, p, pad, np.int64)
    if mult_d > 1:
        xp = np.repeat(xp, mult_d, axis=-1)  # channel c·M + m reads input channel c
    wi = w.astype(np.int64)
    acc = np.zeros((x.shape[0], *out_hw, oc), dtype=np.int64)
    for ky, kx, view in geometry.windows(xp, p.kernel, p.stride, p.dilation, out_hw):
        acc += view * wi[0, ky, kx, :]
    return add_bias_and_requantize(acc, inputs[2] if len(inputs) > 2 else None, p)
