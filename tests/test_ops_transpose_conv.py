"""TRANSPOSE_CONV: emulator == TFLM, C == emulator, TFLM arena model == TFLM's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from op_check import check_model
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.tflite_reader import load_tflite

PAD = {"SAME": 0, "VALID": 1}
ACT = {"NONE": 0, "RELU": 1, "RELU6": 3}


def tconv_model(path: Path, seed: int, in_hw: tuple[int, int], cin: int, cout: int,
                k: tuple[int, int], stride: tuple[int, int], padding: str, bias: bool,
                per_channel: bool, activation: str = "NONE", out_hw: tuple[int, int] | None
                = None) -> Path:
    rng = np.random.default_rng(seed)
    if out_hw is None:
        out_hw = tuple((i * s if padding == "SAME" else (i - 1) * s + kk)
                       for i, s, kk in zip(in_hw, stride, k, strict=True))
    w = rng.integers(-127, 128, (cout, *k, cin)).astype(np.int8)
    in_q = (0.05, int(rng.integers(-20, 20)))
    w_scales = rng.uniform(0.002, 0.02, cout) if per_channel else np.array([0.01])
    wq = (w_scales, np.zeros(w_scales.size, np.int64), 0)
    tensors = [Tensor((4,), "int32", data=np.array([1, *out_hw, cout], np.int32)),
               Tensor(w.shape, quant=wq, data=w), Tensor((1, *in_hw, cin), quant=in_q),
               Tensor((1, *out_hw, cout), quant=(0.08, int(rng.integers(-10, 10))))]
    ins = [0, 1, 2]
    if bias:
        b = rng.integers(-3000, 3000, cout).astype(np.int32)
        tensors.append(Tensor((cout,), "int32", quant=(in_q[0] * w_scales,
                                                      np.zeros(cout, np.int64), 0), data=b))
        ins.append(4)
    node = Node("TRANSPOSE_CONV", ins, [3], {"table": "TransposeConvOptions",
                                             "padding": PAD[padding], "strideH": stride[0],
                                             "strideW": stride[1],
                                             "fusedActivationFunction": ACT[activation]})
    return write(path, tensors, [node], [2], [3])


CASES = {
    "s2_same_bias_pc": dict(in_hw=(4, 5), cin=3, cout=4, k=(3, 3), stride=(2, 2),
                            padding="SAME", bias=True, per_channel=True),
    "s2_valid_k2": dict(in_hw=(3, 3), cin=2, cout=3, k=(2, 2), stride=(2, 2), padding="VALID",
                        bias=False, per_channel=False),
    "s1_same_relu": dict(in_hw=(5, 4), cin=4, cout=2, k=(3, 3), stride=(1, 1), padding="SAME",
                         bias=True, per_channel=True, activation="RELU"),
    "s3x2_valid_k4x3": dict(in_hw=(2, 3), cin=2, cout=5, k=(4, 3), stride=(3, 2),
                            padding="VALID", bias=True, per_channel=True),
    "s2_same_odd_out": dict(in_hw=(3, 3), cin=2, cout=2, k=(3, 3), stride=(2, 2),
                            padding="SAME", bias=True, per_channel=True, out_hw=(5, 6)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_transpose_conv_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    path = tconv_model(tmp_path / f"{case}.tflite", sorted(CASES).index(case), **CASES[case])
    check_model(path, tmp_path)


def test_transpose_conv_rejects_a_mismatched_output_shape(tmp_path: Path) -> None:
    path = tconv_model(tmp_path / "bad.tflite", 0, (3, 3), 2, 2, (3, 3), (2, 2), "SAME", True,
                       True, out_hw=(9, 9))
    with pytest.raises(TinymcuError, match="cannot turn input"):
        load_tflite(path)
