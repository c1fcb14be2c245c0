"""L2_NORMALIZATION: emulator == TFLM on 200 seeded inputs (plus degenerate rows),
generated C == emulator, TFLM arena model == TFLM's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from op_check import check_model
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops, oracle
from tinymcu.mcu_runtime.tflite_reader import load_tflite


def l2_model(path: Path, shape: tuple[int, ...], in_q: tuple[float, int],
             out_q: tuple[float, int] = (1 / 128, 0)) -> Path:
    tensors = [Tensor(shape, quant=in_q), Tensor(shape, quant=out_q)]
    return write(path, tensors, [Node("L2_NORMALIZATION", [0], [1],
                                      {"table": "L2NormOptions"})], [0], [1])


@pytest.mark.parametrize("shape,q", [((1, 3, 16), (0.02, 0)), ((4, 10), (0.1, -17)),
                                     ((1, 2, 2, 64), (0.5, 9)), ((2, 1), (0.05, 3))])
def test_l2_normalization_bit_exact_with_tflm(shape, q, tmp_path: Path) -> None:
    path = l2_model(tmp_path / f"l2_{'x'.join(map(str, shape))}.tflite", shape, q)
    check_model(path, tmp_path)


def test_l2_normalization_degenerate_rows_match_tflm(tmp_path: Path) -> None:
    """Rows at the zero point (sum 0), one step off it (sum 1) and at full scale."""
    path = l2_model(tmp_path / "edge.tflite", (1, 4, 8), (0.1, -3))
    g = load_tflite(path)
    x = np.full((1, 4, 8), -3, np.int8)
    x[0, 1, 2] = -2
    x[0, 2, :] = 127
    x[0, 3, ::2] = -128
    want = oracle.tflm_invoke_batch(path, [[x]])[0][0]
    got = ops.get("L2_NORMALIZATION").run(g.ops[0], g, [x])[0]
    np.testing.assert_array_equal(got, want.reshape(got.shape))


def test_l2_normalization_needs_the_fixed_output_scale(tmp_path: Path) -> None:
    path = l2_model(tmp_path / "bad.tflite", (1, 8), (0.1, 0), out_q=(0.01, 0))
    with pytest.raises(TinymcuError, match="scale 1/128"):
        load_tflite(path)
