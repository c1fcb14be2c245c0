"""BATCH_MATMUL: emulator == TFLM, C == emulator, TFLM arena model == TFLM's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from op_check import check_model
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.tflite_reader import load_tflite


def bmm_model(path: Path, seed: int, lhs: tuple[int, ...], rhs: tuple[int, ...],
              out: tuple[int, ...], adj_x: bool = False, adj_y: bool = False,
              const_rhs: bool = True, same: bool = False) -> Path:
    """x (graph input) @ rhs: rhs a constant, another view of x (``same``: x @ xᵀ)."""
    rng = np.random.default_rng(seed)
    qx = (0.04, int(rng.integers(-30, 30)))
    tensors = [Tensor(lhs, quant=qx)]
    if same:
        ins = [0, 0]
    else:
        data = rng.integers(-128, 128, rhs).astype(np.int8) if const_rhs else None
        tensors.append(Tensor(rhs, quant=(0.03, int(rng.integers(-10, 10))), data=data))
        ins = [0, 1]
    tensors.append(Tensor(out, quant=(0.5, int(rng.integers(-20, 20)))))
    node = Node("BATCH_MATMUL", ins, [len(tensors) - 1],
                {"table": "BatchMatMulOptions", "adjX": adj_x, "adjY": adj_y})
    return write(path, tensors, [node], [0], [len(tensors) - 1])


CASES = {
    "const_rhs_3d": dict(lhs=(1, 6, 8), rhs=(8, 5), out=(1, 6, 5)),
    "adj_y_const": dict(lhs=(2, 4, 7), rhs=(2, 3, 7), out=(2, 4, 3), adj_y=True),
    "adj_x_const": dict(lhs=(1, 7, 4), rhs=(7, 3), out=(1, 4, 3), adj_x=True),
    "broadcast_4d": dict(lhs=(2, 1, 4, 5), rhs=(3, 5, 6), out=(2, 3, 4, 6)),
    "broadcast_5d_adj": dict(lhs=(1, 2, 1, 3, 4), rhs=(2, 1, 3, 5, 4), out=(2, 2, 3, 3, 5),
                             adj_y=True),
    "x_xt_attention": dict(lhs=(1, 2, 5, 6), rhs=(), out=(1, 2, 5, 5), adj_y=True,
                           same=True),
    "xt_x": dict(lhs=(1, 5, 3), rhs=(), out=(1, 3, 3), adj_x=True, same=True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_batch_matmul_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    path = bmm_model(tmp_path / f"{case}.tflite", sorted(CASES).index(case), **CASES[case])
    check_model(path, tmp_path)


def test_batch_matmul_rejects_mismatched_depth(tmp_path: Path) -> None:
    path = bmm_model(tmp_path / "bad.tflite", 0, (1, 4, 5), (6, 3), (1, 4, 3))
    with pytest.raises(TinymcuError, match="do not agree on the depth"):
        load_tflite(path)
