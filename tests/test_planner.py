"""The memory planner: placement properties, lifetimes, in-place slots, and plans of real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle, planner, tflm_arena
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph, Op, Quant, Tensor
from tinymcu.mcu_runtime.planner import Interval
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"


@st.composite
def interval_sets(draw, max_steps: int = 12, max_n: int = 14) -> list[Interval]:
    n_steps = draw(st.integers(1, max_steps))
    n = draw(st.integers(1, max_n))
    out = []
    for i in range(n):
        a = draw(st.integers(0, n_steps - 1))
        b = draw(st.integers(a, n_steps - 1))
        out.append(Interval(f"b{i}", draw(st.integers(0, 64)) * 16, a, b))
    return out


def assert_no_conflict(intervals: list[Interval], offsets: dict[str, int]) -> None:
    for i, x in enumerate(intervals):
        assert offsets[x.name] >= 0
        for y in intervals[i + 1:]:
            if x.overlaps(y) and x.size and y.size:
                ox, oy = offsets[x.name], offsets[y.name]
                assert ox + x.size <= oy or oy + y.size <= ox, (x, y, ox, oy)


@settings(max_examples=150, deadline=None)
@given(interval_sets(), st.sampled_from(planner.STRATEGIES))
def test_no_two_live_buffers_overlap_and_arena_is_at_least_the_bound(intervals, strategy):
    offsets = planner.place(intervals, strategy)
    assert_no_conflict(intervals, offsets)
    assert planner.arena_size(intervals, offsets) >= planner.lower_bound(intervals)


@settings(max_examples=150, deadline=None)
@given(interval_sets())
def test_best_is_never_worse_than_tflm_greedy(intervals):
    best = planner.arena_size(intervals, planner.place(intervals, "best"))
    greedy = planner.arena_size(intervals, planner.greedy_by_size(intervals))
    assert best <= greedy


@settings(max_examples=100, deadline=None)
@given(interval_sets())
def test_disjoint_lifetimes_reach_the_bound(intervals):
    # Chained lifetimes (each buffer alone in its step) must pack to the largest buffer.
    chain = [Interval(it.name, it.size, k, k) for k, it in enumerate(intervals)]
    offsets = planner.place(chain, "best")
    assert planner.arena_size(chain, offsets) == max(it.size for it in chain)


def test_greedy_by_size_reproduces_tflm_placement():
    # TFLM places the biggest first at 0, the next-biggest above it if they overlap in
    # time, and drops later small buffers into the first gap that fits.
    ivs = [Interval("a", 100, 0, 1), Interval("b", 200, 1, 2), Interval("c", 50, 2, 3),
           Interval("d", 100, 3, 4)]
    offs = planner.greedy_by_size(ivs)
    assert offs == {"b": 0, "a": 200, "d": 0, "c": 200}
    assert planner.arena_size(ivs, offs) == 300


def test_best_beats_greedy_where_size_order_fragments():
    # Greedy-by-size puts the two 32-byte buffers side by side (steps 0-1 and 1-2) and then
    # the long 48-byte buffer must go above both; a better order packs to the bound.
    ivs = [Interval("x", 32, 0, 1), Interval("y", 32, 1, 2), Interval("z", 48, 2, 3),
           Interval("w", 16, 0, 0), Interval("v", 48, 0, 0)]
    greedy = planner.arena_size(ivs, planner.greedy_by_size(ivs))
    best = planner.arena_size(ivs, planner.place(ivs, "best"))
    assert best <= greedy
    assert best == planner.lower_bound(ivs)


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(TinymcuError, match="strategy"):
        planner.place([Interval("a", 16, 0, 0)], "magic")


# ----------------------------------------------------------------------------------------------
# Plans of small hand-built graphs.
# ----------------------------------------------------------------------------------------------

Q = Quant(np.array([0.1], "float32"), np.array([0], "int32"))


def _t(i: int, shape: tuple[int, ...]) -> Tensor:
    return Tensor(i, f"t{i}", shape, "int8", Q)


def chain_graph(kinds: list[str], shapes: list[tuple[int, ...]]) -> Graph:
    """op k maps tensor k to tensor k+1 (weights are left out: the planner ignores them)."""
    tensors = [_t(i, s) for i, s in enumerate(shapes)]
    ops = [Op(k, kind, (k,), (k + 1,), {"activation": "NONE"}) for k, kind in enumerate(kinds)]
    return Graph(tensors, ops, [0], [len(kinds)])


class FakeKernel:
    def __init__(self, inplace: bool, scratch: int = 0):
        self._inplace, self._scratch = inplace, scratch

    def inplace(self, op, graph):
        return self._inplace

    def inplace_source(self, op):
        return 0

    def scratch_bytes(self, op, graph, region=None):
        return self._scratch


@pytest.fixture
def fake_kernels(monkeypatch):
    """Kernel answers the planner asks for, per op kind (the real ones are tested elsewhere)."""
    table = {"LOGISTIC": FakeKernel(True), "CONV_2D": FakeKernel(False, 40),
             "RESHAPE": FakeKernel(True), "FULLY_CONNECTED": FakeKernel(False)}
    from tinymcu.mcu_runtime import ops as kernels

    monkeypatch.setattr(kernels, "get", lambda kind: table[kind], raising=False)
    return table


@st.composite
def random_graphs(draw) -> Graph:
    """DAGs of 1-10 ops; each reads one or two earlier tensors (a second read makes an ADD-
    like op and keeps its first input alive longer). Sizes vary so in-place must check them."""
    n_ops = draw(st.integers(1, 10))
    tensors = [_t(0, (1, draw(st.integers(1, 40))))]
    ops = []
    for k in range(n_ops):
        kind = draw(st.sampled_from(["LOGISTIC", "FULLY_CONNECTED", "RESHAPE"]))
        a = draw(st.integers(0, k))
        ins = (a,) if draw(st.booleans()) else (a, draw(st.integers(0, k)))
        size = tensors[a].size if kind == "RESHAPE" else draw(st.integers(1, 40))
        tensors.append(_t(k + 1, (1, size)))
        ops.append(Op(k, kind, ins, (k + 1,)))
    used = {t for op in ops for t in op.inputs}
    outputs = [t.index for t in tensors[1:] if t.index not in used] or [n_ops]
    return Graph(tensors, ops, [0], outputs)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # the fixture is stateless
@given(random_graphs())
def test_in_place_slots_never_hold_two_live_values(fake_kernels, g):
    p = planner.plan(g, layer_schedule(g))
    assert_plan_is_sound(p)
    members: dict[str, list[str]] = {}
    for b in p.lifetimes:
        members.setdefault(p.slots.get(b, b), []).append(b)
    outputs = {f"t{t}" for t in g.outputs}
    for group in members.values():
        spans = sorted(p.lifetimes[b] for b in group)
        # members follow each other: one is read for the last time where the next is written
        for (_, last), (first, _) in zip(spans, spans[1:]):
            assert first == last
        # a graph output is never overwritten: it is the last value of its slot
        for b in group:
            if b in outputs:
                assert p.lifetimes[b] == spans[-1]
    assert p.arena_bytes >= p.lower_bound


def test_lifetimes_follow_the_schedule(fake_kernels):
    g = chain_graph(["FULLY_CONNECTED"] * 3, [(1, 64), (1, 32), (1, 48), (1, 16)])
    p = planner.plan(g, layer_schedule(g))
    assert p.lifetimes == {"t0": (0, 0), "t1": (0, 1), "t2": (1, 2), "t3": (2, 2)}
    assert p.live_bytes == [96, 80, 64]
    assert p.lower_bound == 96 and p.arena_bytes == 96
    assert p.ratio == 1.0


def test_elementwise_op_runs_in_place(fake_kernels):
    g = chain_graph(["FULLY_CONNECTED", "LOGISTIC", "FULLY_CONNECTED"],
                    [(1, 64), (1, 100), (1, 100), (1, 8)])
    p = planner.plan(g, layer_schedule(g))
    assert p.offsets["t1"] == p.offsets["t2"]
    assert p.slots == {"t2": "t1"}
    # without in-place, steps 1 would hold 200 bytes
    assert p.lower_bound == 164 and p.arena_bytes == 164


def test_no_in_place_when_the_input_is_still_needed(fake_kernels):
    # t1 feeds LOGISTIC (op 1) and an ADD later (op 2): LOGISTIC must not overwrite it.
    tensors = [_t(0, (1, 32)), _t(1, (1, 32)), _t(2, (1, 32)), _t(3, (1, 32))]
    ops = [Op(0, "FULLY_CONNECTED", (0,), (1,)), Op(1, "LOGISTIC", (1,), (2,)),
           Op(2, "FULLY_CONNECTED", (2, 1), (3,))]
    g = Graph(tensors, ops, [0], [3])
    p = planner.plan(g, layer_schedule(g))
    assert p.offsets["t1"] != p.offsets["t2"]
    assert not p.slots


def test_reshape_aliases_and_scratch_lives_one_step(fake_kernels):
    g = chain_graph(["CONV_2D", "RESHAPE", "FULLY_CONNECTED"],
                    [(1, 4, 4, 2), (1, 4, 4, 4), (1, 64), (1, 10)])
    p = planner.plan(g, layer_schedule(g))
    assert p.offsets["t2"] == p.offsets["t1"]
    assert p.lifetimes["scratch@0"] == (0, 0) and p.sizes["scratch@0"] == 40
    # step 0: input 32 + output 64 + scratch 40
    assert p.live_bytes[0] == 136 and p.arena_bytes == 136


def test_a_graph_output_is_never_overwritten_in_place(fake_kernels):
    # t1 is a graph output and the last op's input: LOGISTIC must not write over it.
    g = chain_graph(["FULLY_CONNECTED", "LOGISTIC"], [(1, 8), (1, 16), (1, 16)])
    g.outputs = [1, 2]
    p = planner.plan(g, layer_schedule(g))
    assert not p.slots and p.offsets["t1"] != p.offsets["t2"]


def test_graph_input_is_reused_once_consumed(fake_kernels):
    g = chain_graph(["LOGISTIC"], [(1, 64), (1, 64)])
    p = planner.plan(g, layer_schedule(g))
    assert p.offsets["t0"] == p.offsets["t1"] and p.arena_bytes == 64


def test_buffers_are_aligned_to_four_bytes(fake_kernels):
    g = chain_graph(["FULLY_CONNECTED"] * 2, [(1, 5), (1, 3), (1, 7)])
    p = planner.plan(g, layer_schedule(g))
    assert all(o % 4 == 0 for o in p.offsets.values())
    assert p.sizes == {"t0": 8, "t1": 4, "t2": 8}


def test_unknown_target_is_a_clear_error(fake_kernels):
    g = chain_graph(["LOGISTIC"], [(1, 4), (1, 4)])
    with pytest.raises(TinymcuError, match="target"):
        planner.plan(g, layer_schedule(g), target="gpu")


# ----------------------------------------------------------------------------------------------
# Real models: the shared MLPerf Tiny / TFLM example models.
# ----------------------------------------------------------------------------------------------

MODELS = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant",
          "pretrainedResnet_large_int8", "ad01_int8", "str_ww_ref_model", "person_detect",
          "micro_speech_quantized", "hello_world_int8"]


def _load(name: str) -> Graph:
    return load_tflite(DATA / f"{name}.tflite")


def assert_plan_is_sound(p: planner.Plan) -> None:
    """No two buffers alive at the same step share a byte, and all lie inside the arena."""
    names = sorted(p.offsets)
    ivs = [Interval(n, p.sizes[n], *p.lifetimes[n]) for n in names]
    same_slot = {n: p.slots.get(n, n) for n in names}
    for i, x in enumerate(ivs):
        assert p.offsets[x.name] + x.size <= p.arena_bytes - p.persistent_bytes
        for y in ivs[i + 1:]:
            if same_slot[x.name] == same_slot[y.name] or not (x.overlaps(y) and x.size and y.size):
                continue
            ox, oy = p.offsets[x.name], p.offsets[y.name]
            assert ox + x.size <= oy or oy + y.size <= ox, (x, y, ox, oy)


@pytest.mark.parametrize("name", MODELS)
def test_best_plan_beats_tflm_and_sits_at_the_liveness_bound(name):
    """With the memory-mode kernels (TFLM's reference kernels have no im2col scratch)."""
    from tinymcu.mcu_runtime.ops.conv import set_optimize

    g = set_optimize(_load(name), "memory")
    sched = layer_schedule(g)
    best = planner.plan(g, sched)
    greedy = planner.plan(g, sched, strategy="greedy_by_size")
    assert_plan_is_sound(best)
    assert_plan_is_sound(greedy)
    assert best.arena_bytes <= greedy.arena_bytes
    assert best.arena_bytes <= tflm_arena.predict(g).head
    assert best.arena_bytes <= 1.05 * best.lower_bound
    assert len(best.live_bytes) == len(sched.steps) and max(best.live_bytes) == best.lower_bound


def test_in_place_merges_save_memory_on_vww():
    # VWW's stride-1 depthwise convolutions run in place: their output takes the input's slot.
    g = _load("vww_96_int8")
    p = planner.plan(g, layer_schedule(g))
    dw = [op for op in g.ops if op.kind == "DEPTHWISE_CONV_2D"]
    merged = {f"t{op.outputs[0]}" for op in dw} & set(p.slots)
    assert merged
    for name in merged:
        assert p.offsets[name] == p.offsets[p.slots[name]]
    assert p.arena_bytes == 55296  # the bound without in-place is also 55,296 B; TFLM: 73,728


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_ref_model", "pretrainedResnet_quant", "ad01_int8",
                                  "str_ww_ref_model"])
def test_emulating_each_plan_is_bit_exact_with_tflm(name):
    # The emulator fills every byte that is not live with junk before each step, so a plan
    # that lets two live buffers overlap (or in-place where it is not legal) changes outputs.


    g = _load(name)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(-128, 128, g.tensors[t].shape, dtype=np.int8) for t in g.inputs]
    expected = oracle.tflm_invoke(DATA / f"{name}.tflite", inputs)
    sched = layer_schedule(g)
    for p in (planner.plan(g, sched), planner.plan(g, sched, strategy="greedy_by_size"),
              planner.plan(g, sched, target="tflm")):
        result = emulate(g, p, inputs)
        assert result.high_water <= p.arena_bytes
        for got, want in zip(result.outputs, expected, strict=True):
            np.testing.assert_array_equal(got.reshape(want.shape), want)


@pytest.mark.slow
def test_patch_schedule_plans_are_bit_exact_and_best_reaches_the_bound():
    # MCUNetV2-style patch schedules have hundreds of tile buffers with staggered lifetimes:
    # the case where the planner's search matters. Both strategies must stay exact.
    from tinymcu.mcu_runtime import patch

    g = _load("vww_96_int8")
    sched = patch.search(g).schedule
    assert sched.kind == "patch"
    x = [np.random.default_rng(3).integers(-128, 128, (1, 96, 96, 3), dtype=np.int8)]
    want = oracle.tflm_invoke(DATA / "vww_96_int8.tflite", x)[0]
    best = planner.plan(g, sched)
    greedy = planner.plan(g, sched, strategy="greedy_by_size")
    assert best.arena_bytes <= greedy.arena_bytes
    assert best.arena_bytes <= 1.05 * best.lower_bound
    for p in (best, greedy):
        assert_plan_is_sound(p)
        result = emulate(g, p, x)
        assert result.high_water == p.arena_bytes
        np.testing.assert_array_equal(result.outputs[0].reshape(want.shape), want)


def test_a_wrong_plan_is_caught_by_the_emulator():
    # In ResNet-8 a residual branch lives across several steps. Put a buffer written while
    # the branch is still needed on top of it: the emulator's output must change.

    g = _load("pretrainedResnet_quant")
    p = planner.plan(g, layer_schedule(g))
    long_lived, clobber = next((x, y) for x, (xa, xb) in p.lifetimes.items()
                               for y, (ya, _) in p.lifetimes.items() if xa < ya < xb)
    p.offsets[clobber] = p.offsets[long_lived]
    x = [np.random.default_rng(2).integers(-128, 128, (1, 32, 32, 3), dtype=np.int8)]
    want = oracle.tflm_invoke(DATA / "pretrainedResnet_quant.tflite", x)[0]
    got = emulate(g, p, x).outputs[0]
    assert not np.array_equal(got.reshape(want.shape), want)
