"""PAD folding (``passes.fold_pads``): same results, less memory, TFLM untouched.

PyTorch's stride-2 ``padding=1`` convs export as PAD + VALID conv. Folding the PAD into the
conv (explicit pads, applied inside the window loop) must give bit-identical outputs —
op by op and tile by tile — while the padded copy disappears from the arena.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from patch_graphs import GraphBuilder, random_stack

from tinymcu.mcu_runtime import patch
from tinymcu.mcu_runtime.check import Budget, check_model
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.passes import fold_pads
from tinymcu.mcu_runtime.pipeline import load_graph
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import Schedule, layer_schedule


def random_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, graph.tensors[i].shape, dtype=np.int8) for i in graph.inputs]


def run(graph: Graph, schedule: Schedule, inputs: list[np.ndarray]) -> list[np.ndarray]:
    p = plan(graph, schedule)
    result = emulate(graph, p, inputs)
    assert result.high_water <= p.arena_bytes
    return result.outputs


def kinds(graph: Graph) -> list[str]:
    return [op.kind for op in graph.ops]


def assert_same_outputs(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


# --- IR-built graphs ------------------------------------------------------------------------

def test_torch_style_conv_becomes_one_explicitly_padded_conv() -> None:
    b = GraphBuilder((10, 11, 3))
    x = b.conv(b.input, 4, kernel=1)
    x = b.torch_style_conv(x, 5)  # 10×11, stride 2: no window reads a bottom pad row
    g = b.build(b.torch_style_conv(x, 0, stride=1, depthwise=True))
    before = [(op.kind, op.inputs, dict(op.attrs)) for op in g.ops]
    f = fold_pads(g)
    assert kinds(g) == ["CONV_2D", "PAD", "CONV_2D", "PAD", "DEPTHWISE_CONV_2D"]
    assert kinds(f) == ["CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D"]
    assert [op.index for op in f.ops] == [0, 1, 2]
    conv, dw = f.ops[1], f.ops[2]
    assert conv.attrs["padding"] == "EXPLICIT" and conv.attrs["pads"] == (1, 0, 1, 1)
    assert dw.attrs["pads"] == (1, 1, 1, 1)
    # the conv reads what the PAD read; the PAD outputs are no longer activations
    assert conv.inputs[0] == g.ops[1].inputs[0] and dw.inputs[0] == conv.outputs[0]
    pad_outs = {g.ops[1].outputs[0], g.ops[3].outputs[0]}
    assert pad_outs.isdisjoint(t.index for t in f.activations())
    assert len(f.tensors) == len(g.tensors)
    # the input graph is left as it was
    assert [(op.kind, op.inputs, op.attrs) for op in g.ops] == before
    inputs = random_inputs(g)
    assert_same_outputs(run(f, layer_schedule(f), inputs), run(g, layer_schedule(g), inputs))
    assert plan(f, layer_schedule(f)).arena_bytes < plan(g, layer_schedule(g)).arena_bytes


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(3, 14), w=st.integers(3, 14), cin=st.integers(1, 4),
       kernel=st.sampled_from([1, 2, 3, 5]), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), depthwise=st.booleans(), data=st.data())
def test_folded_equals_unfolded_per_layer_and_per_tile(
        h: int, w: int, cin: int, kernel: int, stride: int, dilation: int, depthwise: bool,
        data: st.DataObject) -> None:
    """Random PAD + VALID window op, between two convs so the pad sits inside a stage."""
    span = (kernel - 1) * dilation + 1
    pads = [data.draw(st.integers(0, span - 1)) for _ in range(4)]
    assume(h + pads[0] + pads[1] >= span and w + pads[2] + pads[3] >= span)
    b = GraphBuilder((h, w, cin), seed=data.draw(st.integers(0, 1 << 20)))
    x = b.conv(b.input, cin, kernel=1)
    x = b.pad(x, *pads)
    x = b.conv(x, 3, kernel=kernel, stride=stride, dilation=dilation, padding="VALID",
               depthwise=depthwise)
    g = b.build(b.conv(x, 2, kernel=1, activation="NONE"))
    f = fold_pads(g)
    assert "PAD" not in kinds(f) and f.ops[1].attrs["pads"] == tuple(pads)
    inputs = random_inputs(g, seed=h * w)
    want = run(g, layer_schedule(g), inputs)
    assert_same_outputs(run(f, layer_schedule(f), inputs), want)
    for split in patch.split_candidates(f):
        oh, ow = f.tensors[f.ops[split].outputs[0]].shape[1:3]
        parts = data.draw(st.integers(1, min(oh, ow, 4)))
        assert_same_outputs(run(f, patch.patch_schedule(f, split, parts), inputs), want)
    # the search's cheap floor stays a lower bound with explicit pads (in-place depthwise)
    for cand, walk in patch.candidates(f):
        assert cand.floor <= patch.liveness_peak(f, walk.schedule())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_random_stacks_fold_without_changing_outputs(seed: int) -> None:
    g = random_stack(np.random.default_rng(seed))
    f = fold_pads(g)
    folded = sum(op.kind == "PAD" for op in g.ops) - sum(op.kind == "PAD" for op in f.ops)
    assert len(g.ops) - len(f.ops) == folded
    assert sum(op.attrs.get("padding") == "EXPLICIT" for op in f.ops) == folded
    inputs = random_inputs(g, seed % 1000)
    assert_same_outputs(run(f, layer_schedule(f), inputs), run(g, layer_schedule(g), inputs))


def test_pads_that_change_results_or_are_needed_elsewhere_stay() -> None:
    """Kept: PADV2 with -128 (not the zero point), a PAD before a pool, a PAD read twice,
    a pad as wide as the window, a PAD before a SAME conv, a PAD that is a graph output.
    Only the plain PAD before a VALID conv folds."""
    b = GraphBuilder((10, 10, 2), seed=5)
    x = b.conv(b.input, 3, kernel=1)
    x = b.conv(b.pad(x, 1, 1, 1, 1, value=-128), 3, kernel=3, padding="VALID")
    x = b.pool(b.pad(x, 1, 1, 1, 1), "AVERAGE_POOL_2D", kernel=3, stride=1)
    shared = b.pad(x, 1, 1, 1, 1)
    x = b.add(b.conv(shared, 3, kernel=3, padding="VALID"),
              b.conv(shared, 3, kernel=3, padding="VALID"))
    x = b.conv(b.pad(x, 3, 0, 0, 0), 3, kernel=3, padding="VALID")
    x = b.conv(b.pad(x, 1, 1, 1, 1), 3, kernel=3, padding="SAME")
    x = b.conv(b.pad(x, 1, 0, 2, 1), 3, kernel=3, padding="VALID")
    tail = b.pad(x, 1, 1, 1, 1)
    g = Graph(b.tensors, b.ops, [b.input], [b.conv(tail, 2, kernel=3, padding="VALID"), tail])
    f = fold_pads(g)
    pads = [op.outputs[0] for op in g.ops if op.kind in ("PAD", "PADV2")]
    kept = [op.outputs[0] for op in f.ops if op.kind in ("PAD", "PADV2")]
    assert len(pads) == 7 and kept == pads[:5] + pads[6:]
    folded = [op for op in f.ops if op.attrs.get("padding") == "EXPLICIT"]
    assert len(folded) == 1 and folded[0].attrs["pads"] == (1, 0, 2, 1)
    assert len(g.ops) - len(f.ops) == 1
    inputs = random_inputs(g)
    assert_same_outputs(run(f, layer_schedule(f), inputs), run(g, layer_schedule(g), inputs))


# --- a real PyTorch export against TFLM -------------------------------------------------------

def _tflm(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tinymcu.mcu_runtime.oracle import tflm_invoke

    return tflm_invoke(str(path), inputs)


@pytest.mark.slow
def test_exported_torch_mobilenetv2_folded_is_bit_exact_with_tflm_and_smaller(
        torch_mobilenetv2: Path) -> None:
    _, raw = load_graph(torch_mobilenetv2, target="tflm")
    _, graph = load_graph(torch_mobilenetv2, target="tinymcu")
    pads = sum(op.kind == "PAD" for op in raw.ops)
    assert pads >= 3 and "PAD" not in kinds(graph) and len(graph.ops) == len(raw.ops) - pads
    inputs = random_inputs(graph, 3)
    want = _tflm(torch_mobilenetv2, inputs)
    assert_same_outputs(run(graph, layer_schedule(graph), inputs), want)
    res = patch.search(graph)
    assert res.split > 0
    assert_same_outputs(run(graph, res.schedule, inputs), want)
    deepest = max(patch.split_candidates(graph))
    h, w = graph.tensors[graph.ops[deepest].outputs[0]].shape[1:3]
    assert_same_outputs(run(graph, patch.patch_schedule(graph, deepest, min(h, w)), inputs),
                        want)
    # the padded copies are gone: op by op and patch by patch the arena shrinks
    assert plan(graph, layer_schedule(graph)).arena_bytes < \
        plan(raw, layer_schedule(raw)).arena_bytes
    assert res.peak < patch.search(raw).peak


@pytest.mark.slow
def test_tflm_target_keeps_the_pad_ops(torch_mobilenetv2: Path) -> None:
    """TFLM runs the PAD op, so its prediction is made on the graph as written."""
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    raw = load_tflite(torch_mobilenetv2.read_bytes())
    budget = Budget(256 * 1024, 1024 * 1024)
    tflm = check_model(torch_mobilenetv2, budget, target="tflm")
    assert tflm.model.ops == len(raw.ops)
    assert tflm.chosen.arena_bytes == plan(raw, layer_schedule(raw), target="tflm").arena_bytes
    assert [o.kind for o in tflm.chosen.ops] == kinds(raw)
    ours = check_model(torch_mobilenetv2, budget, target="tinymcu")
    assert ours.model.ops == len(raw.ops) - sum(op.kind == "PAD" for op in raw.ops)
    assert ours.chosen.arena_bytes < plan(raw, layer_schedule(raw)).arena_bytes
