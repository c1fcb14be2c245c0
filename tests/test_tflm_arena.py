"""The TFLM arena predictor against what the tflite-micro interpreter itself reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle, planner, tflm_arena
from tinymcu.mcu_runtime.schedule import Region, Step, layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"

#: every shared model the reader loads (the audio preprocessor has custom ops)
MODELS = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant",
          "pretrainedResnet_large_int8", "ad01_int8", "str_ww_ref_model", "person_detect",
          "micro_speech_quantized", "hello_world_int8"]


def _model(name: str) -> Path:
    return DATA / f"{name}.tflite"


@pytest.mark.parametrize(("fields", "size64", "size32"), [
    ("ppi", 24, 12),                                  # TfLiteEvalTensor
    ("ppppppip", 64, 32),                             # NodeAndRegistration
    (tflm_arena._TFLITE_TENSOR, 64, 40),              # TfLiteTensor (static memory)
    (tflm_arena._OPDATA["CONV_2D"], 80, 56),          # OpDataConv
    (tflm_arena._OPDATA["FULLY_CONNECTED"], 72, 48),  # OpDataFullyConnected
    (tflm_arena._OPDATA["SOFTMAX"], 80, 56),          # SoftmaxParams
])
def test_struct_layouts(fields, size64, size32):
    # 64-bit sizes are what the wheel records; the 32-bit ones follow from the same layout.
    assert tflm_arena.struct_size(fields, tflm_arena.X86_64_WHEEL) == size64
    assert tflm_arena.struct_size(fields, tflm_arena.CORTEX_M) == size32


@pytest.mark.parametrize("name", MODELS)
def test_prediction_matches_the_tflm_allocation_report(name):
    path = _model(name)
    measured = oracle.tflm_allocations(path)
    predicted = tflm_arena.predict(load_tflite(path), pointer_bytes=8)
    # The planned head is reproduced byte for byte (same lifetimes, order and placement).
    assert predicted.head == measured["head"]
    # The persistent tail comes from struct layouts; alignment of the tail pointer between
    # allocations of different alignments is not simulated, so allow one 16-byte step.
    assert abs(predicted.tail - measured["tail"]) <= 16
    assert abs(predicted.total - measured["total"]) / measured["total"] < 0.05


@pytest.mark.parametrize("name", ["hello_world_int8", "ad01_int8", "kws_ref_model"])
def test_predicted_min_arena_is_close_to_the_smallest_arena_tflm_runs_with(name):
    # hello_world and ad01 need more than the recorded total (Prepare/planning temporaries).
    path = _model(name)
    measured = oracle.tflm_min_arena(path)
    predicted = tflm_arena.predict(load_tflite(path), pointer_bytes=8).min_arena
    assert abs(predicted - measured) / measured < 0.05


def test_cortex_m_tail_is_smaller_than_on_x86_64():
    g = load_tflite(_model("vww_96_int8"))
    m4, x86 = tflm_arena.predict(g, 4), tflm_arena.predict(g, 8)
    assert m4.head == x86.head
    assert m4.tail < x86.tail
    # on x86-64 the eval tensors are 24 B each, on Cortex-M 12 B
    assert m4.tail_parts["TfLiteEvalTensor data"] * 2 == x86.tail_parts["TfLiteEvalTensor data"]


def test_tflm_target_plan_is_tflm_arena_with_its_offsets():
    g = load_tflite(_model("vww_96_int8"))
    p = planner.plan(g, layer_schedule(g), target="tflm", pointer_bytes=8)
    pred = tflm_arena.predict(g, 8)
    assert p.arena_bytes == pred.total and p.persistent_bytes == pred.tail
    assert p.planned_bytes == pred.head == 73728
    assert all(o % 16 == 0 for o in p.offsets.values())
    assert p.lower_bound - p.persistent_bytes == 55296  # VWW's liveness bound
    # our own plan of the same model fits in the bound, far under TFLM's head
    ours = planner.plan(g, layer_schedule(g))
    assert ours.arena_bytes <= 55296 < pred.head


def test_tflm_target_rejects_patch_schedules():
    g = load_tflite(_model("kws_ref_model"))
    s = layer_schedule(g)
    s.steps[0] = Step(s.steps[0].op, s.steps[0].io, Region(0, 1, 0, 1))
    s.kind = "patch"
    with pytest.raises(TinymcuError, match="layer"):
        planner.plan(g, s, target="tflm")


def test_every_op_our_runtime_supports_has_a_tflm_arena_model():
    from tinymcu.mcu_runtime import kernels

    assert set(kernels.supported()) <= set(tflm_arena._OPDATA)


def test_unknown_pointer_size_is_a_clear_error():
    with pytest.raises(TinymcuError, match="pointer"):
        tflm_arena.predict(load_tflite(_model("hello_world_int8")), pointer_bytes=2)
