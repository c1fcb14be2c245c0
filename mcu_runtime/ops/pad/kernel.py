"""The numpy PAD/PADV2 kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tinymcu.mcu_runtime.geometry import Pad

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.ops.pad import PadParams


def pad(p: PadParams, inputs: list[np.ndarray | None], tile_pad: Pad | None) -> np.ndarray:
    """The padded input; on a tile (``tile_pad`` given) only the part of the border inside it."""
    x = inputs[0]
    assert x is not None
    if tile_pad is not None:
        t, b, left, r = tile_pad
        widths = np.array([[0, 0], [t, b], [left, r], [0, 0]], dtype=np.int64)
    else:
        widths = np.asarray(inputs[1], dtype=np.int64).reshape(-1, 2)
        widths = np.concatenate([np.zeros((x.ndim - len(widths), 2), np.int64), widths])
    return np.pad(x, [tuple(w) for w in widths.tolist()], constant_values=p.value)
