"""The new ops' C kernels under AddressSanitizer and UndefinedBehaviorSanitizer: no access
outside the arena or a constant array, no signed overflow or bad shift, outputs equal to
the emulator (negative-stride slices, block copies, gathers, transpose conv, broadcast
batch matmul, L2 norm, 16x8 conv, int64 ARG_MAX, CAST to float)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from op_check import random_inputs
from test_codegen import SANITIZE, _sanitizer_works, build
from test_ops_arg_cast import arg_model, cast_model
from test_ops_batch_matmul import CASES as BMM
from test_ops_batch_matmul import bmm_model
from test_ops_conv16 import CASES as C16
from test_ops_conv16 import conv16_model
from test_ops_data_movement import ONE_OP, SPLITS, one_op, split_concat
from test_ops_l2_norm import l2_model
from test_ops_transpose_conv import CASES as TCONV
from test_ops_transpose_conv import tconv_model

from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite


def _one(path: Path, case: str) -> Path:
    spec = dict(ONE_OP[case])
    return one_op(path, spec.pop("kind"), spec.pop("x"), spec.pop("consts"), spec.pop("out"),
                  **spec)


MODELS = {
    **{k: (lambda p, k=k: _one(p, k)) for k in ("strided_slice_negative", "batch_to_space",
                                                 "gather", "depth_to_space", "slice")},
    "split_v": lambda p: split_concat(p, **SPLITS["split_v"]),
    "transpose_conv": lambda p: tconv_model(p, 0, **TCONV["s3x2_valid_k4x3"]),
    "batch_matmul": lambda p: bmm_model(p, 0, **BMM["broadcast_5d_adj"]),
    "l2_norm": lambda p: l2_model(p, (4, 10), (0.1, -17)),
    "conv_16x8": lambda p: conv16_model(p, 0, **C16["valid_s2_relu"]),
    "arg_max_i64": lambda p: arg_model(p, "ARG_MAX", (1, 6, 3), 1, "int64"),
    "cast_f32": lambda p: cast_model(p, "int8", "float32", (1, 3, 4, 5)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_new_op_kernels_are_clean_under_sanitizers(name: str, tmp_path: Path) -> None:
    if not _sanitizer_works(tmp_path):
        pytest.skip("the host compiler has no ASan/UBSan runtime")
    path = MODELS[name](tmp_path / f"{name}.tflite")
    g = load_tflite(path)
    p = plan(g, layer_schedule(g))
    out = tmp_path / "c"
    generate(g, p, out)
    exe = build(out, tuple(SANITIZE))
    sets = random_inputs(g, 10, 1)
    (out / "in.bin").write_bytes(b"".join(s[0].tobytes() for s in sets))
    proc = subprocess.run([str(exe), str(out / "in.bin"), str(out / "out.bin")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    t = g.tensors[g.outputs[0]]
    ys = np.frombuffer((out / "out.bin").read_bytes(), t.dtype).reshape(len(sets), *t.shape)
    for k, (y, s) in enumerate(zip(ys, sets, strict=True)):
        np.testing.assert_array_equal(y, emulate(g, p, s).outputs[0], err_msg=f"input {k}")
