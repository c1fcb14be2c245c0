"""The emulator: every shared model bit-exact with TFLM (and TFLite's reference kernels)
inside the planned arena, layer by layer and patch by patch, and proof that a wrong plan is
caught rather than passing by luck.

BUILTIN_REF runs for all models in ONE child process (this file run as a script): importing
TensorFlow once instead of once per model keeps the suite fast.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops as kernels
from tinymcu.mcu_runtime import oracle, patch
from tinymcu.mcu_runtime.emulator import buffer_lifetimes, emulate, unshared_plan
from tinymcu.mcu_runtime.ir import Graph, Op, Quant, Tensor
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"

SHARED_MODELS = ["hello_world_int8", "ad01_int8", "kws_ref_model", "micro_speech_quantized",
                 "str_ww_ref_model", "pretrainedResnet_quant", "pretrainedResnet_large_int8",
                 "vww_96_int8", "person_detect"]
#: TFLite's Python interpreter refuses it (bias quantized_dimension=3); TFLM accepts it
TFLITE_REJECTS = {"person_detect"}
#: BUILTIN_REF's FULLY_CONNECTED rounds once where TFLM rounds twice: ±1 per layer (pinned
#: down in test_kernels.py::test_builtin_ref_fully_connected_rounds_once), which ad01's ten
#: stacked FC layers compound; per op it stays within one (test below)
REF_DIFFERS = {"ad01_int8"}


def _bmp_as_int8(path: Path) -> np.ndarray:
    """The TFLM person-detection test images: pixel bytes reinterpreted as int8, top row first."""
    raw = path.read_bytes()
    start = int.from_bytes(raw[10:14], "little")
    rows = np.frombuffer(raw[start:start + 96 * 96], dtype=np.uint8).reshape(96, 96)[::-1]
    return rows.view(np.int8).reshape(1, 96, 96, 1)


def real_samples(name: str, graph: Graph) -> list[np.ndarray]:
    if name == "kws_ref_model":
        return [np.load(DATA / "kws_sample_input_int8.npy")]
    if name == "person_detect":
        return [_bmp_as_int8(DATA / "person.bmp"), _bmp_as_int8(DATA / "no_person.bmp")]
    if name == "str_ww_ref_model":
        q = graph.tensors[graph.inputs[0]].quant
        specs = np.load(DATA / "sww_calibration_samples.npz")["specs"][:2]
        x = np.round(specs / float(q.scale[0])) + int(q.zero_point[0])
        return [s[None] for s in np.clip(x, -128, 127).astype(np.int8)]
    return []


def input_sets(name: str, graph: Graph, n_random: int = 2) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(sum(map(ord, name)))
    sets = [[rng.integers(-128, 128, graph.tensors[t].shape).astype(np.int8)
             for t in graph.inputs] for _ in range(n_random)]
    return sets + [[x] for x in real_samples(name, graph)]


def reference_runs(request_path: Path, result_path: Path) -> None:
    """Child process: BUILTIN_REF outputs per input set, and every tensor of the first set."""
    import tensorflow as tf

    with open(request_path, "rb") as fh:
        request = pickle.load(fh)
    results = {}
    for name, sets in request.items():
        it = tf.lite.Interpreter(
            model_path=str(DATA / f"{name}.tflite"), experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        outs, tensors = [], {}
        for k, inputs in enumerate(sets):
            for d, x in zip(it.get_input_details(), inputs, strict=True):
                it.set_tensor(d["index"], x)
            it.invoke()
            outs.append([it.get_tensor(d["index"]).copy() for d in it.get_output_details()])
            if k == 0:
                tensors = {d["index"]: it.get_tensor(d["index"]).copy()
                           for d in it.get_tensor_details() if d["dtype"] != np.object_}
        results[name] = {"outputs": outs, "tensors": tensors}
    with open(result_path, "wb") as fh:
        pickle.dump(results, fh)


@pytest.fixture(scope="module")
def builtin_ref(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("builtin_ref")
    request = {name: input_sets(name, load_tflite(DATA / f"{name}.tflite"))
               for name in SHARED_MODELS if name not in TFLITE_REJECTS}
    with open(tmp / "request.pkl", "wb") as fh:
        pickle.dump(request, fh)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, str(tmp / "request.pkl"),
                           str(tmp / "result.pkl")], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp / "result.pkl", "rb") as fh:
        return pickle.load(fh)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_model_bit_exact_in_planned_arena(name: str, builtin_ref: dict) -> None:
    path = DATA / f"{name}.tflite"
    graph = load_tflite(path)
    p = plan(graph, layer_schedule(graph))
    sets = input_sets(name, graph)
    ours = [emulate(graph, p, s, seed=k) for k, s in enumerate(sets)]
    for res in ours:
        assert res.arena_bytes == p.arena_bytes
        assert 0 <= p.arena_bytes - res.high_water < p.alignment
    for res, theirs in zip(ours, oracle.tflm_invoke_batch(path, sets), strict=True):
        for y, t in zip(res.outputs, theirs, strict=True):
            np.testing.assert_array_equal(y, t.reshape(y.shape), err_msg=f"{name} vs TFLM")
    if name in TFLITE_REJECTS:
        return
    for res, theirs in zip(ours, builtin_ref[name]["outputs"], strict=True):
        for y, t in zip(res.outputs, theirs, strict=True):
            if name not in REF_DIFFERS:  # per op it is still within one: next test
                np.testing.assert_array_equal(y, t.reshape(y.shape), err_msg=f"{name} vs REF")


@pytest.mark.parametrize("name", [n for n in SHARED_MODELS if n not in TFLITE_REJECTS])
def test_every_op_matches_builtin_ref_on_its_own_inputs(name: str, builtin_ref: dict) -> None:
    """Each op fed BUILTIN_REF's input tensors gives BUILTIN_REF's output: exactly, except
    FULLY_CONNECTED within one (its single rounding)."""
    graph = load_tflite(DATA / f"{name}.tflite")
    tensors = builtin_ref[name]["tensors"]
    for op in graph.ops:
        args = [None if t < 0 else graph.tensors[t].data if graph.tensors[t].is_const
                else tensors[t] for t in op.inputs]
        y = kernels.get(op.kind).run(op, graph, args)[0]
        ref = tensors[op.outputs[0]].reshape(y.shape)
        limit = 1 if op.kind == "FULLY_CONNECTED" else 0
        assert np.abs(y.astype(int) - ref).max() <= limit, f"{name} op {op.index} {op.kind}"


def test_person_detect_classifies_its_test_images() -> None:
    graph = load_tflite(DATA / "person_detect.tflite")
    p = plan(graph, layer_schedule(graph))
    person, no_person = real_samples("person_detect", graph)
    assert np.argmax(emulate(graph, p, [person]).outputs[0]) == 1
    assert np.argmax(emulate(graph, p, [no_person]).outputs[0]) == 0


@pytest.mark.parametrize("name,grid", [("vww_96_int8", 3), ("person_detect", 4),
                                       ("pretrainedResnet_quant", 2)])
def test_patch_schedule_bit_exact_with_layer_schedule(name: str, grid: int) -> None:
    """Tiles with halos and border-only padding give exactly the per-layer result."""
    graph = load_tflite(DATA / f"{name}.tflite")
    splits = [s for s in patch.split_candidates(graph)
              if min(graph.tensors[graph.ops[s].outputs[0]].shape[1:3]) >= grid]
    assert splits, f"{name} has no patch split for a {grid}x{grid} grid"
    layer_plan = plan(graph, layer_schedule(graph))
    x = input_sets(name, graph, n_random=1)[0]
    expected = emulate(graph, layer_plan, x).outputs
    for split in (splits[len(splits) // 2], splits[-1]):
        sched = patch.patch_schedule(graph, split, grid)
        p = plan(graph, sched)
        res = emulate(graph, p, x)
        assert 0 <= p.arena_bytes - res.high_water < p.alignment
        for y, e in zip(res.outputs, expected, strict=True):
            np.testing.assert_array_equal(y, e, err_msg=f"{name} split {split} grid {grid}")


def _long_overlapping_pair(graph: Graph, p) -> tuple[str, str]:
    """Two buffers live together for 2+ steps (a residual branch and the main path) — not
    an op's input/output pair, which in-place execution may legally share."""
    life = buffer_lifetimes(graph, p.schedule)
    for a in life:
        for b in life:
            if a != b and min(life[a][1], life[b][1]) - max(life[a][0], life[b][0]) >= 1:
                return a, b
    raise AssertionError("no two buffers live together for two steps")


def test_wrong_plan_with_overlapping_live_buffers_is_caught() -> None:
    graph = load_tflite(DATA / "pretrainedResnet_quant.tflite")
    p = plan(graph, layer_schedule(graph))
    a, b = _long_overlapping_pair(graph, p)
    bad_plan = replace(p, offsets={**p.offsets, b: p.offsets[a]})
    caught = False
    for x in input_sets("pretrainedResnet_quant", graph, n_random=3):
        good = emulate(graph, p, x).outputs[0]
        caught |= not np.array_equal(emulate(graph, bad_plan, x).outputs[0], good)
    assert caught


def _depthwise_graph() -> Graph:
    """x → in-place-capable depthwise 3×3 → y, small enough that every output pixel shows."""
    rng = np.random.default_rng(1)
    act = Quant(np.array([0.05], np.float32), np.array([-3]))
    w_q = Quant(np.full(4, 0.01, np.float32), np.zeros(4, np.int64), axis=3)
    b_q = Quant(np.full(4, 0.0005, np.float32), np.zeros(4, np.int64))
    tensors = [Tensor(0, "x", (1, 6, 6, 4), "int8", act),
               Tensor(1, "w", (1, 3, 3, 4), "int8", w_q,
                      rng.integers(-127, 128, (1, 3, 3, 4)).astype(np.int8)),
               Tensor(2, "b", (4,), "int32", b_q, np.zeros(4, np.int32)),
               Tensor(3, "y", (1, 6, 6, 4), "int8", act)]
    op = Op(0, "DEPTHWISE_CONV_2D", (0, 1, 2), (3,),
            {"stride": (1, 1), "dilation": (1, 1), "padding": "SAME", "depth_multiplier": 1,
             "activation": "NONE"})
    return Graph(tensors, [op], [0], [3])


def test_junk_fill_is_what_exposes_a_scratch_overlap() -> None:
    """The depthwise scratch placed over the step's own input: the numpy kernel never writes
    scratch, so only the junk the emulator puts there (as the C kernel would) catches it.
    Memory mode: its one-channel scratch leaves room in the small arena for the bad plan."""
    from tinymcu.mcu_runtime.ops.conv import set_optimize

    graph = set_optimize(_depthwise_graph(), "memory")
    p = plan(graph, layer_schedule(graph))
    assert "scratch@0" in p.offsets
    x = [np.random.default_rng(2).integers(-128, 128, (1, 6, 6, 4)).astype(np.int8)]
    good = emulate(graph, p, x).outputs[0]
    bad_plan = replace(p, offsets={**p.offsets, "scratch@0": p.offsets["t0"]})
    np.testing.assert_array_equal(emulate(graph, bad_plan, x, junk=False).outputs[0], good)
    assert not np.array_equal(emulate(graph, bad_plan, x).outputs[0], good)


def _two_adds() -> Graph:
    """y1 = a + b is a graph output that the next op also reads; y2 = y1 + b."""
    q = Quant(np.array([0.05], np.float32), np.array([3]))
    shape = (1, 4, 4, 2)
    tensors = [Tensor(i, f"t{i}", shape, "int8", q) for i in range(4)]
    ops = [Op(0, "ADD", (0, 1), (2,), {"activation": "NONE"}),
           Op(1, "ADD", (2, 1), (3,), {"activation": "NONE"})]
    return Graph(tensors, ops, [0, 1], [2, 3])


def test_graph_output_read_by_a_later_op_survives_planning() -> None:
    """Regression: the planner once let op 1 overwrite graph output t2 in place (t2's
    lifetime runs to the last step, which looked like "read for the last time here")."""
    graph = _two_adds()
    rng = np.random.default_rng(0)
    x = [rng.integers(-60, 60, (1, 4, 4, 2)).astype(np.int8) for _ in range(2)]
    sched = layer_schedule(graph)
    expected = emulate(graph, unshared_plan(graph, sched), x).outputs
    for y, e in zip(emulate(graph, plan(graph, sched), x).outputs, expected, strict=True):
        np.testing.assert_array_equal(y, e)


def test_bad_inputs_and_plans_raise_clear_errors() -> None:
    graph = _two_adds()
    sched = layer_schedule(graph)
    good = unshared_plan(graph, sched)
    x = [np.zeros((1, 4, 4, 2), np.int8)] * 2
    with pytest.raises(TinymcuError, match="2 input"):
        emulate(graph, good, x[:1])
    with pytest.raises(TinymcuError, match="needs shape"):
        emulate(graph, good, [np.zeros((1, 3), np.int8)] * 2)
    with pytest.raises(TinymcuError, match="no offset"):
        emulate(graph, replace(good, offsets={k: v for k, v in good.offsets.items()
                                               if k != "t2"}), x)
    with pytest.raises(TinymcuError, match="outside"):
        emulate(graph, replace(good, arena_bytes=good.arena_bytes - 1), x)


if __name__ == "__main__":
    reference_runs(Path(sys.argv[1]), Path(sys.argv[2]))
