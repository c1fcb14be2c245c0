"""The numpy BATCH_MATMUL reference kernel (broadcast batches, int64 sums, one requant)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.ops.conv.kernel import requantize

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.batch_matmul import BatchMatmulParams


def batch_matmul(p: BatchMatmulParams, lhs: np.ndarray | None, rhs: np.ndarray | None
                 ) -> np.ndarray:
    assert lhs is not None and rhs is not None
    a = np.asarray(lhs).astype(np.int64) - p.lhs_zp
    b = np.asarray(rhs).astype(np.int64) - p.rhs_zp
    if p.adj_x:
        a = np.swapaxes(a, -1, -2)
    if p.adj_y:
        b = np.swapaxes(b, -1, -2)
    acc = np.matmul(a, b)
    return requantize(acc, np.array([p.mult]), np.array([p.shift]), p.out_zp, -128, 127)
