"""Registry conformance: every op the reader accepts has all its parts, and drift fails.

An op is complete when the reader accepts it (``tflite_kinds``) and its OpDef has a numpy
kernel, a C emitter (with its header shipped and self-contained), a TFLM arena model, a
patch-tiling decision, and a bit-exact test named in :data:`BIT_EXACT` (checked to exist).
The documented exceptions below are checked to still be exceptions, so fixing one without
updating this file fails too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinymcu.mcu_runtime import ops, regions, tflite_reader, tflm_arena
from tinymcu.mcu_runtime.codegen import runtime_headers
from tinymcu.mcu_runtime.codegen.emitters import emitters
from tinymcu.mcu_runtime.ops.base import TILINGS, OpDef

TESTS = Path(__file__).parent
CC = shutil.which("gcc") or shutil.which("cc")

_SIGNAL_TEST = "test_signal_ops.py::test_audio_front_end_sequence_bit_exact_with_tflm"
#: op kind → a test that checks it bit for bit (emulator vs TFLM or BUILTIN_REF, and/or the
#: generated C vs the emulator); ``file::function``
BIT_EXACT: dict[str, str] = {
    "CONV_2D": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "DEPTHWISE_CONV_2D": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "FULLY_CONNECTED": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "ADD": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "SUB": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "MUL": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "AVERAGE_POOL_2D": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "MAX_POOL_2D": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "MEAN": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "PAD": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "PADV2": "test_codegen.py::test_rarely_used_ops_match_the_emulator",
    "CONCATENATION": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "SOFTMAX": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "LOGISTIC": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "HARD_SWISH": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "RELU": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "RELU6": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "RELU_N1_TO_1": "test_ops_builtin_ref.py::test_relu_n1_to_1_bit_exact_with_builtin_ref",
    "TRANSPOSE": "test_codegen.py::test_transpose_c_equals_emulator",
    "RESHAPE": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "SQUEEZE": "test_codegen.py::test_rarely_used_ops_match_the_emulator",
    "QUANTIZE": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "DEQUANTIZE": "test_kernels.py::test_op_model_bit_exact_with_tflm_and_reference",
    "EXPAND_DEPTHWISE": "test_fusion.py::test_keras_mobilenetv2_fused_bit_exact_with_tflm",
    "SVDF": "test_seqops.py::test_svdf_bit_exact_with_tflm_across_invocations",
    "MINIMUM": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "MAXIMUM": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "RESIZE_BILINEAR": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "RESIZE_NEAREST_NEIGHBOR":
        "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "REDUCE_MAX": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "REDUCE_MIN": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "SUM": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "TANH": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "LEAKY_RELU": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "ELU": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "ABS": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "SQUARED_DIFFERENCE": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "PRELU": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "RSQRT": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "TRANSPOSE_CONV": "test_ops_transpose_conv.py::test_transpose_conv_bit_exact_with_tflm",
    "BATCH_MATMUL": "test_ops_batch_matmul.py::test_batch_matmul_bit_exact_with_tflm",
    "ARG_MAX": "test_ops_arg_cast.py::test_arg_min_max_bit_exact_with_tflm",
    "ARG_MIN": "test_ops_arg_cast.py::test_arg_min_max_bit_exact_with_tflm",
    "CAST": "test_ops_arg_cast.py::test_cast_bit_exact_with_tflm",
    "L2_NORMALIZATION": "test_ops_l2_norm.py::test_l2_normalization_bit_exact_with_tflm",
    "SLICE": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "STRIDED_SLICE": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "GATHER": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "DEPTH_TO_SPACE": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "SPACE_TO_DEPTH": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "BATCH_TO_SPACE_ND": "test_ops_data_movement.py::test_data_movement_op_bit_exact_with_tflm",
    "SPACE_TO_BATCH_ND":
        "test_ops_data_movement.py::test_space_to_batch_bit_exact_with_builtin_ref_and_tflm",
    "SPLIT": "test_ops_data_movement.py::test_split_bit_exact_with_tflm",
    "SPLIT_V": "test_ops_data_movement.py::test_split_bit_exact_with_tflm",
    "PACK": "test_ops_data_movement.py::test_unpack_pack_bit_exact_with_tflm",
    "UNPACK": "test_ops_data_movement.py::test_unpack_pack_bit_exact_with_tflm",
    "TILE": "test_ops_data_movement.py::test_tile_bit_exact_with_builtin_ref",
    "UNIDIRECTIONAL_SEQUENCE_LSTM":
        "test_seqops.py::test_lstm_bit_exact_with_tflm_across_invocations",
    "DIV": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    # TFLM runs these in float32 only: checked against BUILTIN_REF in the same test
    "EXP": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "LOG": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    "SQRT": "test_ops_tflm.py::test_op_bit_exact_with_tflm_and_c_equals_emulator",
    # TFLM's Signal library (custom ops): the audio front end, frame by frame with state
    "SignalWindow": _SIGNAL_TEST,
    "SignalFftAutoScale": _SIGNAL_TEST,
    "SignalRfft": _SIGNAL_TEST,
    "SignalEnergy": _SIGNAL_TEST,
    "SignalFilterBank": _SIGNAL_TEST,
    "SignalFilterBankSquareRoot": _SIGNAL_TEST,
    "SignalFilterBankSpectralSubtraction": _SIGNAL_TEST,
    "SignalPCAN": _SIGNAL_TEST,
    "SignalFilterBankLog": _SIGNAL_TEST,
}

#: accepted ops without a C kernel yet, and why (checked: they really have none)
NO_C_KERNEL: dict[str, str] = {}
#: accepted ops without a TFLM arena model, and why
NO_TFLM_MODEL = {
    "RELU_N1_TO_1": "TFLM has no RELU_N1_TO_1 kernel, so it cannot run such a model",
    "TILE": "TFLM has no TILE kernel, so it cannot run such a model",
    "EXP": "TFLM's EXP is float32 only, so it cannot run an int8 one",
    "LOG": "TFLM's LOG is float32 only, so it cannot run an int8 one",
    "SQRT": "TFLM's SQRT is float32 only, so it cannot run an int8 one",
}


def _test_exists(ref: str) -> bool:
    file, func = ref.split("::")
    path = TESTS / file
    return path.exists() and re.search(rf"^def {func}\(", path.read_text(), re.M) is not None


def problems() -> list[str]:
    """Every way the registry, its derived tables and the tests have drifted apart."""
    out = []
    reg = ops.registry()
    accepted = ops.tflite_kinds()
    c_table = emitters()
    headers = {p.name for p in runtime_headers()}
    for kind in sorted(reg):
        d = reg[kind]
        if type(d).run is OpDef.run:
            out.append(f"{kind}: no numpy kernel (OpDef.run)")
        if kind not in c_table and kind not in NO_C_KERNEL:
            out.append(f"{kind}: no C emitter")
        if kind in c_table and kind in NO_C_KERNEL:
            out.append(f"{kind}: has a C emitter now; drop it from NO_C_KERNEL")
        if d.header is not None and d.header not in headers:
            out.append(f"{kind}: header {d.header} is not shipped by runtime_headers()")
        if kind in accepted and kind not in tflm_arena._OPDATA and kind not in NO_TFLM_MODEL:
            out.append(f"{kind}: no TFLM arena model (OpDef.tflm_opdata)")
        if kind in tflm_arena._OPDATA and kind in NO_TFLM_MODEL:
            out.append(f"{kind}: has a TFLM arena model now; drop it from NO_TFLM_MODEL")
        if d.tiling not in (*TILINGS, None) or (d.tiling is None and not d.untileable):
            out.append(f"{kind}: tiling {d.tiling!r} without a reason")
        if kind not in BIT_EXACT:
            out.append(f"{kind}: no bit-exact test in BIT_EXACT")
        elif not _test_exists(BIT_EXACT[kind]):
            out.append(f"{kind}: bit-exact test {BIT_EXACT[kind]} does not exist")
    out += [f"{k}: in BIT_EXACT but not registered" for k in sorted(set(BIT_EXACT) - set(reg))]
    if tflite_reader.SUPPORTED_OPS != accepted:
        out.append("the reader's SUPPORTED_OPS is not the registry's TFLite kinds")
    for tiling, kinds in (("pointwise", regions.POINTWISE_KINDS),
                          ("window", regions.WINDOW_KINDS), ("pad", regions.PAD_KINDS)):
        if kinds != ops.tiling_kinds(tiling):
            out.append(f"regions' {tiling} kinds differ from the registry's")
    return out


def test_every_accepted_op_has_kernel_emitter_header_tflm_model_and_test() -> None:
    assert problems() == []


def test_a_half_added_op_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drift as the issue found it (an op the reader accepts with no kernel, no C, no TFLM
    model, no test) fails the conformance check."""

    class HalfAdded(OpDef):
        kinds = ("CUMSUM",)

    reg = dict(ops.registry())
    reg["CUMSUM"] = HalfAdded()
    monkeypatch.setattr(ops, "_REGISTRY", reg)
    found = [p for p in problems() if p.startswith("CUMSUM")]
    assert {p.split(": ")[1].split(" (")[0] for p in found} >= {
        "no numpy kernel", "no C emitter", "no TFLM arena model", "no bit-exact test in BIT_EXACT"}


def test_exceptions_are_real() -> None:
    """The ops listed as lacking a part really lack it (and are accepted)."""
    assert set(NO_C_KERNEL) <= ops.tflite_kinds() - ops.c_kinds()
    assert set(NO_TFLM_MODEL) <= ops.tflite_kinds() - set(tflm_arena._OPDATA)


def test_op_headers_are_unique_shipped_and_listed_in_the_umbrella() -> None:
    names = [p.name for p in ops.header_paths()]
    assert len(names) == len(set(names))
    umbrella = next(p for p in runtime_headers() if p.name == "tinymcu_kernels.h").read_text()
    included = set(re.findall(r'#include "([^"]+)"', umbrella))
    assert included == set(names) | {"tm_common.h"}


@pytest.mark.skipif(CC is None, reason="needs a host C compiler")
def test_every_op_header_compiles_on_its_own(tmp_path: Path) -> None:
    """Each op header includes what it needs (an op folder can be added alone)."""
    for h in runtime_headers():
        (tmp_path / h.name).write_text(h.read_text())
    for h in runtime_headers():
        src = tmp_path / f"only_{h.stem}.c"
        src.write_text(f'#include "{h.name}"\nint main(void) {{ return 0; }}\n')
        proc = subprocess.run([CC, "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                               "-Wno-unused-function", "-I", str(tmp_path), str(src), "-o",
                               str(tmp_path / "a.out")], capture_output=True, text=True)
        assert proc.returncode == 0, f"{h.name}: {proc.stderr[-2000:]}"
