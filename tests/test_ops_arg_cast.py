"""ARG_MAX, ARG_MIN (int32/int64 indices) and CAST: emulator == TFLM on 200 seeded inputs,
generated C == emulator (raw typed outputs), TFLM arena model == TFLM's report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from op_check import check_model
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.tflite_reader import load_tflite

Q = (0.05, 3)
TYPES = {"int32": 2, "int64": 4}


def arg_model(path: Path, kind: str, x: tuple[int, ...], axis: int, out_type: str) -> Path:
    out = x[:axis % len(x)] + x[axis % len(x) + 1:]
    table = "ArgMaxOptions" if kind == "ARG_MAX" else "ArgMinOptions"
    tensors = [Tensor(x, quant=Q), Tensor((1,), "int32", data=np.array([axis], np.int32)),
               Tensor(out, out_type)]
    node = Node(kind, [0, 1], [2], {"table": table, "outputType": TYPES[out_type]})
    return write(path, tensors, [node], [0], [2])


ARGS = {
    "argmax_channels_i32": ("ARG_MAX", (1, 4, 5, 10), -1, "int32"),
    "argmax_rows_i64": ("ARG_MAX", (1, 6, 3), 1, "int64"),
    "argmin_i32": ("ARG_MIN", (2, 7), 1, "int32"),
    "argmin_axis0_i64": ("ARG_MIN", (5, 3, 2), 0, "int64"),
}


@pytest.mark.parametrize("case", sorted(ARGS))
def test_arg_min_max_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    """int64 indices: TFLM's kernel takes int32 only, so BUILTIN_REF is their oracle."""
    path = arg_model(tmp_path / f"{case}.tflite", *ARGS[case])
    check_model(path, tmp_path, reference="ref" if ARGS[case][3] == "int64" else "tflm")


def test_arg_max_ties_keep_the_first_index(tmp_path: Path) -> None:
    """Few distinct values force ties: the earliest index wins, as in TFLM."""
    path = arg_model(tmp_path / "ties.tflite", "ARG_MAX", (1, 8, 16), -1, "int32")
    g = load_tflite(path)
    from tinymcu.mcu_runtime import ops
    x = np.zeros((1, 8, 16), np.int8)
    x[0, :, 3] = x[0, :, 9] = 1
    y = ops.get("ARG_MAX").run(g.ops[0], g, [x, None])[0]
    assert (y == 3).all()


def cast_model(path: Path, src: str, dst: str, shape: tuple[int, ...]) -> Path:
    tensors = [Tensor(shape, src, quant=Q if src == "int8" else None),
               Tensor(shape, dst, quant=Q if dst == "int8" else None)]
    return write(path, tensors, [Node("CAST", [0], [1], {"table": "CastOptions"})], [0], [1])


@pytest.mark.parametrize("src,dst", [("int8", "int32"), ("int8", "float32"), ("int8", "int16"),
                                     ("uint8", "int8")])
def test_cast_bit_exact_with_tflm(src: str, dst: str, tmp_path: Path) -> None:
    """uint8 input: TFLM's CAST does not take it, BUILTIN_REF is the oracle."""
    path = cast_model(tmp_path / f"cast_{src}_{dst}.tflite", src, dst, (1, 3, 4, 5))
    check_model(path, tmp_path, reference="ref" if src == "uint8" else "tflm")


def test_unsupported_cast_is_a_one_line_error(tmp_path: Path) -> None:
    path = cast_model(tmp_path / "bad.tflite", "float32", "int8", (1, 4))
    with pytest.raises(TinymcuError, match="CAST float32 → int8 is not supported"):
        load_tflite(path)
