"""CONV_2D with int16 activations (TFLite's 16x8 scheme): emulator == TFLM on 200 seeded
full-range int16 inputs, generated C == emulator, TFLM arena model == TFLM's report."""

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


def conv16_model(path: Path, seed: int, in_hw: tuple[int, int], cin: int, cout: int, k: int,
                 stride: int, padding: str, activation: str = "NONE", bias: str = "int64",
                 n_convs: int = 1) -> Path:
    """``n_convs`` chained 16x8 convolutions (per-channel int8 filters, int64 bias)."""
    rng = np.random.default_rng(seed)
    shape = (1, *in_hw, cin)
    scale = 0.0005
    tensors = [Tensor(shape, "int16", quant=(scale, 0))]
    ops, x = [], 0
    for _ in range(n_convs):
        w = rng.integers(-127, 128, (cout, k, k, shape[3])).astype(np.int8)
        ws = rng.uniform(0.001, 0.01, cout)
        tensors.append(Tensor(w.shape, quant=(ws, np.zeros(cout, np.int64), 0), data=w))
        ins = [x, len(tensors) - 1]
        if bias:
            b = rng.integers(-200000, 200000, cout).astype(bias)
            tensors.append(Tensor((cout,), bias, quant=(scale * ws, np.zeros(cout, np.int64), 0),
                                  data=b))
            ins.append(len(tensors) - 1)
        oh = -(-shape[1] // stride) if padding == "SAME" else (shape[1] - k) // stride + 1
        ow = -(-shape[2] // stride) if padding == "SAME" else (shape[2] - k) // stride + 1
        shape = (1, oh, ow, cout)
        scale = 0.002
        tensors.append(Tensor(shape, "int16", quant=(scale, 0)))
        ops.append(Node("CONV_2D", ins, [len(tensors) - 1], {
            "table": "Conv2DOptions", "padding": PAD[padding], "strideW": stride,
            "strideH": stride, "fusedActivationFunction": ACT[activation],
            "dilationWFactor": 1, "dilationHFactor": 1}))
        x = len(tensors) - 1
    return write(path, tensors, ops, [0], [x])


CASES = {
    "same_s1": dict(in_hw=(6, 7), cin=3, cout=4, k=3, stride=1, padding="SAME"),
    "valid_s2_relu": dict(in_hw=(9, 8), cin=2, cout=5, k=3, stride=2, padding="VALID",
                          activation="RELU"),
    "same_s2_relu6_chain": dict(in_hw=(8, 8), cin=4, cout=4, k=3, stride=2, padding="SAME",
                                activation="RELU6", n_convs=2),
    "no_bias_1x1": dict(in_hw=(5, 5), cin=6, cout=3, k=1, stride=1, padding="VALID", bias=""),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_conv2d_16x8_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    path = conv16_model(tmp_path / f"{case}.tflite", sorted(CASES).index(case), **CASES[case])
    check_model(path, tmp_path)


def test_conv2d_16x8_needs_an_int64_bias(tmp_path: Path) -> None:
    path = conv16_model(tmp_path / "b32.tflite", 0, (4, 4), 2, 2, 3, 1, "SAME", bias="int32")
    with pytest.raises(TinymcuError, match="int64 bias"):
        load_tflite(path)
