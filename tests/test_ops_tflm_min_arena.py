"""The TFLM arena prediction of the new ops against the smallest arena TFLM really runs
with (bisected on the x86-64 wheel), as ``test_tflm_arena`` does for the shared models.
Tiny one-op models on purpose: there the temporaries of Prepare set the minimum, so a
kernel that takes more of them than modelled shows up here."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_ops_batch_matmul import CASES as BMM
from test_ops_batch_matmul import bmm_model
from test_ops_conv16 import CASES as C16
from test_ops_conv16 import conv16_model
from test_ops_data_movement import ONE_OP, SPLITS, one_op, split_concat
from test_ops_l2_norm import l2_model
from test_ops_transpose_conv import CASES as TCONV
from test_ops_transpose_conv import tconv_model

from tinymcu.mcu_runtime import oracle, tflm_arena
from tinymcu.mcu_runtime.tflite_reader import load_tflite


def _one_op(path: Path, case: str) -> Path:
    spec = dict(ONE_OP[case])
    return one_op(path, spec.pop("kind"), spec.pop("x"), spec.pop("consts"), spec.pop("out"),
                  **spec)


MODELS = {
    "transpose_conv": lambda p: tconv_model(p, 0, **TCONV["s2_same_bias_pc"]),
    "batch_matmul_adj_x": lambda p: bmm_model(p, 0, **BMM["adj_x_const"]),
    "batch_matmul_attention": lambda p: bmm_model(p, 0, **BMM["x_xt_attention"]),
    "split": lambda p: split_concat(p, **SPLITS["split_channels"]),
    "strided_slice": lambda p: _one_op(p, "strided_slice_masks"),
    "depth_to_space": lambda p: _one_op(p, "depth_to_space"),
    "l2_norm": lambda p: l2_model(p, (1, 3, 16), (0.02, 0)),
    "conv_16x8": lambda p: conv16_model(p, 0, **C16["same_s1"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_predicted_min_arena_is_close_to_what_tflm_needs(name: str, tmp_path: Path) -> None:
    path = MODELS[name](tmp_path / f"{name}.tflite")
    measured = oracle.tflm_min_arena(path)
    predicted = tflm_arena.predict(load_tflite(path), pointer_bytes=8).min_arena
    # never under: an arena we call enough must be enough (above TFLM's minimum only where
    # its tail buffers would overwrite Prepare's temporaries, which we never predict into)
    assert measured <= predicted < 1.05 * measured, (predicted, measured)
