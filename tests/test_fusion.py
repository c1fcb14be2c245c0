"""Expand + depthwise fusion (``passes.fuse_expand_depthwise``): same outputs, less SRAM.

A stride-2 inverted bottleneck's expanded tensor is its peak; run channel by channel, the
pair needs only one expanded plane. The proof is the usual one: outputs equal the unfused
graph op by op and tile by tile (and TFLM on real models), and no step's live bytes grow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patch_graphs import GraphBuilder, inverted_residual, mobilenet_like
from test_patch import random_inputs, run

from tinymcu.mcu_runtime import patch
from tinymcu.mcu_runtime.check import Budget, check_model
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.ops.expand_depthwise import parts
from tinymcu.mcu_runtime.passes import FUSED_KIND, fold_pads, fuse_expand_depthwise
from tinymcu.mcu_runtime.pipeline import load_graph
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule

DATA = Path(__file__).parent / "data"


def fused_count(graph: Graph) -> int:
    return sum(op.kind == FUSED_KIND for op in graph.ops)


def assert_same(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def bottleneck_stack(rng: np.random.Generator) -> Graph:
    """Random inverted bottlenecks (stride 1/2, expansion 1–6, odd sizes, SAME/VALID and
    PyTorch-style PAD + VALID depthwise), the structures the pass must get right."""
    size = int(rng.integers(7, 21))
    b = GraphBuilder((size, size + int(rng.integers(0, 4)), int(rng.integers(1, 5))),
                     int(rng.integers(1 << 30)))
    x = b.conv(b.input, int(rng.integers(2, 6)), kernel=3, stride=int(rng.choice([1, 2])))
    for _ in range(int(rng.integers(1, 4))):
        if min(b.shape(x)[1:3]) < 5:  # room for a 5×5 VALID window
            break
        cin, expand = b.shape(x)[3], int(rng.integers(1, 7))
        stride = int(rng.choice([1, 2, 2]))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            x = inverted_residual(b, x, expand, int(rng.integers(1, 6)), stride)
        else:
            y = b.conv(x, cin * expand, kernel=1, activation=str(rng.choice(["RELU6", "NONE"])))
            if kind == 1:
                y = b.conv(y, 0, kernel=int(rng.choice([3, 5])), stride=stride,
                           padding=str(rng.choice(["SAME", "VALID"])), depthwise=True)
            else:
                y = b.torch_style_conv(y, 0, kernel=3, stride=stride, pad=1, depthwise=True)
            x = b.conv(y, int(rng.integers(1, 6)), kernel=1, activation="NONE")
    return b.build(x)


def test_stride_2_blocks_fuse_and_stride_1_blocks_do_not() -> None:
    g = mobilenet_like()
    f = fuse_expand_depthwise(g)
    stride2 = [op for op in g.ops if op.kind == "DEPTHWISE_CONV_2D"
               and tuple(op.attrs["stride"]) == (2, 2)]
    assert fused_count(f) == len(stride2) == 2
    assert len(f.ops) == len(g.ops) - 2
    for op in f.ops:
        if op.kind == FUSED_KIND:
            expand, dw = parts(op)
            assert graph_tensor_gone(f, expand.outputs[0])
            assert op.outputs == dw.outputs and op.inputs[0] == expand.inputs[0]
    inputs = random_inputs(g)
    assert_same(run(f, layer_schedule(f), inputs), run(g, layer_schedule(g), inputs))


def graph_tensor_gone(graph: Graph, tensor: int) -> bool:
    return tensor not in {t.index for t in graph.activations()}


def test_fusion_never_raises_a_step_and_keeps_the_macs() -> None:
    """Per step the fused schedule's live bytes are at most the unfused ones (the fused
    step replaces the expand step, which held the larger expanded tensor)."""
    g = mobilenet_like(size=47)
    f = fuse_expand_depthwise(g)
    pg, pf = plan(g, layer_schedule(g)), plan(f, layer_schedule(f))
    assert pf.lower_bound <= pg.lower_bound
    assert patch.schedule_macs(f, layer_schedule(f)) == patch.schedule_macs(g, layer_schedule(g))
    by_output = {g.ops[s.op].outputs[0]: live for s, live in zip(pg.schedule.steps, pg.live_bytes)}
    lower = 0
    for step, live in zip(pf.schedule.steps, pf.live_bytes):
        op = f.ops[step.op]
        assert live <= by_output[op.outputs[0]]
        if op.kind == FUSED_KIND:  # below the expand step it replaces
            assert live < by_output[parts(op)[0].outputs[0]]
            lower += 1
    assert lower == 2


def test_pairs_that_do_not_pay_or_cannot_fuse_stay() -> None:
    b = GraphBuilder((12, 12, 3), seed=1)
    x = b.conv(b.input, 4, kernel=3)
    y = b.conv(x, 12, kernel=1)
    z = b.conv(y, 0, kernel=3, stride=2, depthwise=True)     # expanded tensor read twice
    w = b.conv(y, 4, kernel=1)
    wide = b.conv(b.conv(w, 12, kernel=3), 0, kernel=3, stride=2, depthwise=True)  # 3×3 expand
    same = b.conv(b.conv(wide, 6, kernel=1), 0, kernel=3, stride=1, depthwise=True)  # stride 1
    g = b.build(b.concat(b.conv(z, 2, kernel=1), b.conv(same, 2, kernel=1)))
    assert fused_count(fuse_expand_depthwise(g)) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_random_bottlenecks_fused_equal_unfused_per_layer_and_per_tile(
        seed: int, data: st.DataObject) -> None:
    g = fold_pads(bottleneck_stack(np.random.default_rng(seed)))
    f = fuse_expand_depthwise(g)
    inputs = random_inputs(g, seed)
    want = run(g, layer_schedule(g), inputs)
    assert_same(run(f, layer_schedule(f), inputs), want)
    assert plan(f, layer_schedule(f)).lower_bound <= plan(g, layer_schedule(g)).lower_bound
    splits = patch.split_candidates(f)
    if not splits:
        return
    split = data.draw(st.sampled_from(splits))
    h, w = f.tensors[f.ops[split].outputs[0]].shape[1:3]
    parts = data.draw(st.integers(1, min(h, w, 5)))
    sched = patch.patch_schedule(f, split, parts)
    assert_same(run(f, sched, inputs), want)
    for cand, walk in patch.candidates(f):
        if (cand.split, cand.grid) == (split, parts):
            built = walk.schedule()
            assert cand.macs == patch.schedule_macs(f, built)
            assert cand.floor <= patch.liveness_peak(f, built) == plan(f, built).lower_bound


def test_a_fused_tile_pays_the_expand_over_its_halo() -> None:
    """The 1×1 part runs on every input pixel a tile reads, so halos cost fused MACs too:
    patch MACs of the fused graph equal those of the unfused one, split for split."""
    g = mobilenet_like(size=47)
    f = fuse_expand_depthwise(g)
    split_of = {op.outputs[0]: op.index for op in g.ops}
    checked = 0
    for split in patch.split_candidates(f):
        if any(op.kind == FUSED_KIND for op in f.ops[:split + 1]):
            for parts in (2, 3):
                assert patch.schedule_macs(f, patch.patch_schedule(f, split, parts)) == \
                    patch.schedule_macs(g, patch.patch_schedule(
                        g, split_of[f.ops[split].outputs[0]], parts))
                checked += 1
    assert checked >= 4


# --- real models against TFLM ------------------------------------------------------------------

def _tflm(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tinymcu.mcu_runtime.oracle import tflm_invoke

    return tflm_invoke(str(path), inputs)


@pytest.mark.slow
def test_keras_mobilenetv2_fused_bit_exact_with_tflm(keras_mobilenetv2: Path) -> None:
    path = keras_mobilenetv2
    _, plain = load_graph(path)
    _, graph = load_graph(path, fuse=True)
    assert fused_count(graph) == 4
    inputs = random_inputs(graph, 5)
    want = _tflm(path, inputs)
    assert_same(run(graph, layer_schedule(graph), inputs), want)
    res = patch.search(graph, count_input=False, max_overhead=0.15)
    assert_same(run(graph, res.schedule, inputs), want)
    assert res.peak <= patch.search(plain, count_input=False, max_overhead=0.15).peak
    assert plan(graph, layer_schedule(graph)).arena_bytes < \
        plan(plain, layer_schedule(plain)).arena_bytes


@pytest.mark.slow
def test_exported_torch_mobilenetv2_folded_and_fused_bit_exact_with_tflm(
        torch_mobilenetv2: Path) -> None:
    """PyTorch's stride-2 depthwise comes as PAD + VALID: folded first, then fused."""
    _, graph = load_graph(torch_mobilenetv2, fuse=True)
    assert fused_count(graph) >= 3
    inputs = random_inputs(graph, 7)
    want = _tflm(torch_mobilenetv2, inputs)
    assert_same(run(graph, layer_schedule(graph), inputs), want)
    deepest = max(patch.split_candidates(graph))
    h, w = graph.tensors[graph.ops[deepest].outputs[0]].shape[1:3]
    assert_same(run(graph, patch.patch_schedule(graph, deepest, min(h, w)), inputs), want)


def test_check_reports_fused_pairs_and_tflm_refuses_fusion(tmp_path: Path) -> None:
    from tinymcu.errors import TinymcuError

    model = DATA / "vww_96_int8.tflite"
    budget = Budget(256 * 1024, 1024 * 1024)
    plain = check_model(model, budget)
    fused = check_model(model, budget, fuse=True)
    assert plain.fused_ops == 0 and fused.fused_ops > 0
    assert fused.chosen.arena_bytes <= plain.chosen.arena_bytes
    assert fused.chosen.macs == plain.chosen.macs
    with pytest.raises(TinymcuError, match="--fuse"):
        check_model(model, budget, target="tflm", fuse=True)


def test_cli_check_and_emulate_take_fuse(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    def tinymcu(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                              text=True, timeout=300)

    model = DATA / "vww_96_int8.tflite"
    r = tinymcu("check", str(model), "--fuse", "--schedule", "patch",
                "--json", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    assert "pair(s) run fused" in r.stdout
    assert json.loads((tmp_path / "c.json").read_text())["fused_ops"] > 0
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).integers(-128, 128, (1, 96, 96, 3), dtype=np.int8))
    r = tinymcu("emulate", str(model), "--input", str(x), "--fuse", "--schedule", "patch",
                "--verify")
    assert r.returncode == 0, r.stderr
    assert "TFLM: bit-exact" in r.stdout
    r = tinymcu("check", str(model), "--fuse", "--target", "tflm")
    assert r.returncode == 2 and "--fuse" in r.stderr and r.stderr.count("\n") == 1


def test_patch_benchmark_quick_mode_writes_the_fusion_table(tmp_path: Path) -> None:
    """The benchmark script itself (shared models only): it emulates every schedule it
    reports, so a wrong fused schedule would fail here before it reached the results."""
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "patch" / "run.py"
    out = tmp_path / "results" / "patch.md"
    r = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "## With expand + depthwise fusion" in text
    row = next(line for line in text.splitlines()
               if line.startswith("| MobileNetV1-0.25 @96 (VWW) | 4 |"))
    assert "EXPAND_DEPTHWISE" in row
    assert (out.parent / "patch_memory.svg").exists()
