"""Patch-based scheduling (MCUNetV2): region math, schedule shape, and bit-exact execution.

The proof that a patch schedule is right is running it: the emulator executes every tile
step inside one arena at the planner's offsets, and the outputs must equal per-layer
execution and the TFLM interpreter bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patch_graphs import GraphBuilder, inverted_residual, mobilenet_like, random_stack

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops as kernels
from tinymcu.mcu_runtime import patch
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.regions import Window, grid, input_region, input_span, same_pad_before
from tinymcu.mcu_runtime.schedule import Region, Schedule, layer_schedule

DATA = Path(__file__).parent / "data"


def random_inputs(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for i in graph.inputs:
        t = graph.tensors[i]
        if t.dtype == "int8":
            out.append(rng.integers(-128, 128, t.shape, dtype=np.int8))
        else:
            out.append(rng.uniform(-1, 1, t.shape).astype(t.dtype))
    return out


def run(graph: Graph, schedule: Schedule, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Plan and emulate; the emulator never touches a byte beyond the planned arena."""
    p = plan(graph, schedule)
    result = emulate(graph, p, inputs)
    assert result.high_water <= p.arena_bytes
    return result.outputs


def assert_patch_equals_layer(graph: Graph, split: int, parts: int, seed: int = 0) -> None:
    inputs = random_inputs(graph, seed)
    want = run(graph, layer_schedule(graph), inputs)
    got = run(graph, patch.patch_schedule(graph, split, parts), inputs)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"split {split}, {parts}x{parts}")


# --- region math --------------------------------------------------------------------------

@given(st.integers(1, 60), st.integers(1, 60), st.data())
def test_grid_covers_every_pixel_exactly_once(h: int, w: int, data: st.DataObject) -> None:
    parts = data.draw(st.integers(1, min(h, w)))
    count = np.zeros((h, w), np.int32)
    for r in grid(h, w, parts):
        assert r.h > 0 and r.w > 0
        count[r.y0:r.y1, r.x0:r.x1] += 1
    assert (count == 1).all()


def test_grid_refuses_more_parts_than_pixels() -> None:
    with pytest.raises(ValueError):
        grid(3, 7, 4)


@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 3),
       dilation=st.integers(1, 3), same=st.booleans())
def test_whole_output_needs_whole_input_with_tflite_padding(
        size: int, kernel: int, stride: int, dilation: int, same: bool) -> None:
    """Walking the full output back reproduces TFLite's SAME/VALID padding exactly."""
    span = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size - span) // stride + 1
    if out < 1:
        return
    before = same_pad_before(size, out, kernel, stride, dilation) if same else 0
    win = Window((kernel, 1), (stride, 1), (dilation, 1), (before, 0), (size, 1))
    region, pad = input_region(win, Region(0, out, 0, 1))
    total = max((out - 1) * stride + span - size, 0) if same else 0
    assert pad[:2] == ((total // 2, total - total // 2) if same else (0, 0))
    # the last window ends inside the image or in the bottom padding
    assert region.y0 == 0
    assert region.y1 == min(size, (out - 1) * stride - before + span)


@given(size=st.integers(1, 12), kernel=st.integers(1, 4), stride=st.integers(1, 3),
       dilation=st.integers(1, 2), before=st.integers(0, 6), data=st.data())
def test_input_span_splits_the_window_into_padding_and_real_rows(
        size: int, kernel: int, stride: int, dilation: int, before: int,
        data: st.DataObject) -> None:
    """Any band, even one lying wholly in a (PAD op's thick) border: the rows it reads are
    padding before row 0, the real rows [lo, hi), and padding after the last row."""
    o0 = data.draw(st.integers(0, 8))
    o1 = data.draw(st.integers(o0 + 1, 10))
    win = Window((kernel, 1), (stride, 1), (dilation, 1), (before, 0), (size, 1))
    lo, hi, top, bottom = input_span(win, 0, o0, o1)
    rows = range(o0 * stride - before, (o1 - 1) * stride - before + win.span(0))
    assert top == sum(r < 0 for r in rows) and bottom == sum(r >= size for r in rows)
    real = [r for r in rows if 0 <= r < size]
    assert (lo, hi) == ((real[0], real[-1] + 1) if real else (lo, lo))
    assert 0 <= lo <= hi <= size


# --- schedule construction ----------------------------------------------------------------

def test_split_inside_a_residual_block_is_excluded() -> None:
    g = mobilenet_like()
    adds = [op.index for op in g.ops if op.kind == "ADD"]
    first_block = range(1, adds[0])  # expand, depthwise, project of the first residual block
    for split in first_block:
        assert "crosses the split boundary" in patch.stage_problem(g, split)
        with pytest.raises(TinymcuError, match="crosses"):
            patch.patch_schedule(g, split, 2)
    assert adds[0] in patch.split_candidates(g)


def test_global_ops_end_every_stage() -> None:
    g = mobilenet_like()
    mean = next(op.index for op in g.ops if op.kind == "MEAN")
    assert max(patch.split_candidates(g)) < mean
    assert "MEAN needs its whole input" in patch.stage_problem(g, mean)


def test_pad_op_runs_on_tiles_like_pytorch_stride_2_padding() -> None:
    """PAD + VALID stride-2 conv (PyTorch ``padding=1`` as exported) is part of a stage."""
    b = GraphBuilder((9, 9, 2))
    x = b.conv(b.input, 3, kernel=1)
    x = b.pad(x, 1, 1, 1, 1)
    x = b.conv(x, 3, kernel=3, stride=2, padding="VALID")
    g = b.build(x)
    assert patch.split_candidates(g) == [0, 1, 2]
    for split, parts in [(1, 2), (1, 5), (2, 2), (2, 3), (2, 5)]:
        assert_patch_equals_layer(g, split, parts)
    pads = [s for s in patch.patch_schedule(g, 2, 3).steps if g.ops[s.op].kind == "PAD"]
    # the PAD tile steps pad only where the tile touches the border of the 9×9 map
    assert [s.pad for s in pads[:3]] == [(1, 0, 1, 0), (1, 0, 0, 0), (1, 0, 0, 1)]
    assert all(s.in_region.h + s.pad[0] + s.pad[1] == s.out_region.h for s in pads)


def test_a_tile_inside_a_pad_border_reads_nothing_and_is_pure_padding() -> None:
    """A PAD on the graph input, thicker than the tiles: edge tiles read an empty box."""
    b = GraphBuilder((4, 5, 2), seed=1)
    x = b.pad(b.input, 2, 3, 0, 2)
    g = b.build(b.conv(x, 3, kernel=1))
    zero_point = int(g.tensors[g.ops[0].outputs[0]].quant.zero_point[0])
    for parts in range(1, 8):
        assert_patch_equals_layer(g, 1, parts)
    sched = patch.patch_schedule(g, 1, 4)
    empty = [s for s in sched.steps if g.ops[s.op].kind == "PAD"
             and (s.in_region.h == 0 or s.in_region.w == 0)]
    assert len(empty) == 10  # the top and bottom rows of tiles, the rightmost column
    assert all(s.pad[0] + s.pad[1] == s.out_region.h and s.in_region.y0 in (0, 4)
               for s in empty if s.in_region.h == 0)
    x = np.zeros((1, 0, 3, 2), np.int8)
    tile = kernels.get("PAD").run(g.ops[0], g, [x, None], pad=(2, 0, 1, 0))[0]
    assert tile.shape == (1, 2, 4, 2) and (tile == zero_point).all()


def test_tiles_needing_an_empty_tile_of_a_pad_input_are_refused() -> None:
    """A grid finer than a PAD border would leave the PAD's producer an empty tile."""
    b = GraphBuilder((6, 6, 2))
    x = b.conv(b.input, 3, kernel=1)
    g = b.build(b.pad(x, 2, 2, 2, 2))
    assert_patch_equals_layer(g, 1, 3)
    with pytest.raises(TinymcuError, match="entirely in its padding"):
        patch.patch_schedule(g, 1, 4)
    assert {c.grid for c, _ in patch.candidates(g) if c.split == 1} == {2, 3}


def test_padv2_constant_and_pool_after_pad() -> None:
    """PADV2 with -128 before a VALID max pool (PyTorch ``MaxPool2d(padding=1)``)."""
    b = GraphBuilder((11, 10, 3), seed=2)
    x = b.conv(b.input, 4, kernel=3)
    x = b.pad(x, 1, 1, 1, 1, value=-128)
    x = b.pool(x, "MAX_POOL_2D", kernel=3, stride=2, padding="VALID")
    x = b.torch_style_conv(x, 5, depthwise=False)
    g = b.build(x)
    assert [op.kind for op in g.ops] == ["CONV_2D", "PADV2", "MAX_POOL_2D", "PAD", "CONV_2D"]
    assert patch.split_candidates(g) == [0, 1, 2, 3, 4]
    for split in (2, 4):
        h, w = g.tensors[g.ops[split].outputs[0]].shape[1:3]
        for parts in range(2, min(h, w) + 1):
            assert_patch_equals_layer(g, split, parts)


def test_pad_of_the_channel_axis_ends_no_stage() -> None:
    b = GraphBuilder((6, 6, 2))
    x = b.conv(b.input, 3, kernel=1)
    g = b.build(b.pad(x, 1, 1, 1, 1))
    g.tensors[g.ops[1].inputs[1]].data[3] = (0, 1)
    assert "PAD pads the batch or channel axis" in patch.stage_problem(g, 1)


def test_padding_only_at_the_image_border_and_buffers_hold_what_is_read() -> None:
    g = mobilenet_like()
    sched = patch.patch_schedule(g, 11, 4)
    for step in sched.steps:
        if step.pad is None:
            continue
        src = g.tensors[g.ops[step.op].inputs[0]].shape
        top, bottom, left, right = step.pad
        r = step.in_region
        assert not top or r.y0 == 0
        assert not left or r.x0 == 0
        assert not bottom or r.y1 == src[1]
        assert not right or r.x1 == src[2]
    for step in sched.steps:
        op = g.ops[step.op]
        for t, name in step.io.items():
            buf = sched.buffers[name]
            if buf.region is None:
                continue
            box = step.out_region if t in op.outputs else step.in_region
            assert box is not None
            assert buf.region.y0 <= box.y0 and box.y1 <= buf.region.y1
            assert buf.region.x0 <= box.x0 and box.x1 <= buf.region.x1
            if t in op.outputs:
                assert buf.region == box


def test_residual_tile_carries_the_union_of_both_branches() -> None:
    """The block input feeds a 1×1 conv (no halo) and the skip ADD: its tile covers both."""
    g = mobilenet_like()
    sched = patch.patch_schedule(g, 11, 3)
    add = next(op for op in g.ops if op.kind == "ADD")
    skip = add.inputs[0]
    for k in range(9):
        name = f"t{skip}@{k}"
        reads = [s.in_region for s in sched.steps
                 if s.io.get(skip) == name and skip in g.ops[s.op].inputs]
        assert len(reads) == 2
        assert sched.buffers[name].region == Region(min(r.y0 for r in reads),
                                                    max(r.y1 for r in reads),
                                                    min(r.x0 for r in reads),
                                                    max(r.x1 for r in reads))


def test_stage_output_is_written_once_per_pixel_and_rest_is_per_layer() -> None:
    g = mobilenet_like()
    split, parts = 15, 4
    sched = patch.patch_schedule(g, split, parts)
    out = g.ops[split].outputs[0]
    shape = g.tensors[out].shape
    count = np.zeros(shape[1:3], np.int32)
    for s in sched.steps:
        if s.op == split:
            assert s.io[out] == f"t{out}"
            count[s.out_region.y0:s.out_region.y1, s.out_region.x0:s.out_region.x1] += 1
    assert (count == 1).all()
    tail = sched.steps[-(len(g.ops) - split - 1):]
    assert [s.op for s in tail] == list(range(split + 1, len(g.ops)))
    assert all(s.out_region is None for s in tail)
    assert sched.buffers[f"t{g.inputs[0]}"].region is None
    assert Schedule.from_json(sched.to_json()).to_json() == sched.to_json()


def test_halo_macs_grow_with_the_grid() -> None:
    g = mobilenet_like()
    base = patch.schedule_macs(g, layer_schedule(g))
    assert patch.schedule_macs(g, patch.patch_schedule(g, 0, 1)) == base
    macs = [patch.schedule_macs(g, patch.patch_schedule(g, 15, p)) for p in (1, 2, 3)]
    assert macs[0] == base and macs[0] < macs[1] < macs[2]


# --- bit-exact execution ------------------------------------------------------------------

@pytest.mark.parametrize(("split", "parts"), [(0, 5), (4, 3), (11, 4), (15, 6), (18, 2)])
def test_mobilenet_like_patch_equals_per_layer(split: int, parts: int) -> None:
    """Residual blocks, stride 2, a 23×23 input whose maps (12, 6, 3) tiles do not divide."""
    assert_patch_equals_layer(mobilenet_like(), split, parts)


def test_valid_padding_dilation_pools_and_concat() -> None:
    b = GraphBuilder((17, 13, 2), seed=3)
    x = b.conv(b.input, 4, kernel=3, padding="VALID")
    x = b.pool(x, "MAX_POOL_2D", kernel=3, stride=2, padding="SAME")
    y = b.conv(x, 3, kernel=3, dilation=2, padding="SAME")
    z = b.conv(x, 2, kernel=1)
    x = b.concat(y, z)
    x = b.pool(x, "AVERAGE_POOL_2D", kernel=3, stride=1, padding="SAME")
    x = inverted_residual(b, x, 2, 5, 1)
    x = b.conv(x, 4, kernel=5, stride=2, padding="VALID")
    g = b.build(x)
    for split in patch.split_candidates(g):
        h, w = g.tensors[g.ops[split].outputs[0]].shape[1:3]
        for parts in sorted({min(2, h, w), min(h, w)}):
            assert_patch_equals_layer(g, split, parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_random_conv_stacks_patch_equals_per_layer(seed: int, data: st.DataObject) -> None:
    g = random_stack(np.random.default_rng(seed))
    splits = patch.split_candidates(g)
    assert splits, "a stack of tileable ops always has a split"
    split = data.draw(st.sampled_from(splits))
    h, w = g.tensors[g.ops[split].outputs[0]].shape[1:3]
    parts = data.draw(st.integers(1, min(h, w, 6)))
    try:
        patch.patch_schedule(g, split, parts)
    except TinymcuError as e:
        # only a grid finer than a PAD border inside the stage is refused; one tile never is
        assert "entirely in its padding" in str(e)
        assert any(op.kind == "PAD" for op in g.ops[:split + 1])
        parts = 1
    assert_patch_equals_layer(g, split, parts, seed)
    for cand, walk in patch.candidates(g):
        if (cand.split, cand.grid) == (split, parts):
            sched = walk.schedule()
            assert cand.macs == patch.schedule_macs(g, sched)
            assert cand.floor <= patch.liveness_peak(g, sched) == plan(g, sched).lower_bound


# --- search ---------------------------------------------------------------------------------

def test_search_lowers_the_planned_peak_and_reports_overhead() -> None:
    g = mobilenet_like(size=47)
    res = patch.search(g)
    assert res.peak < res.layer_peak
    assert res.peak == plan(g, res.schedule).arena_bytes
    assert res.macs == patch.schedule_macs(g, res.schedule) > res.layer_macs
    assert res.overhead == pytest.approx(res.macs / res.layer_macs - 1)
    assert res.schedule.info["split"] == res.split and res.schedule.info["grid"] == res.grid
    # the search's pick is no worse than any candidate it planned
    assert all(c.peak is None or c.peak >= res.peak for c in res.candidates)
    assert_patch_equals_layer(g, res.split, res.grid)


def test_search_bound_is_the_planners_lower_bound() -> None:
    """The cheap ranking bound equals the planner's own liveness bound, so pruning is safe."""
    g = mobilenet_like(size=31)
    for split, parts in [(0, 2), (4, 3), (11, 5), (15, 3)]:
        sched = patch.patch_schedule(g, split, parts)
        for counted in (sched, patch.without_inputs(g, sched)):
            p = plan(g, counted)
            assert patch.liveness_peak(g, counted) == p.lower_bound <= p.arena_bytes


def test_cheap_floor_and_macs_agree_with_the_built_schedule() -> None:
    """The search's per-axis shortcuts: MACs exact, floor never above the exact bound."""
    g = mobilenet_like(size=31)
    for counted in (True, False):
        for cand, walk in patch.candidates(g, count_input=counted):
            sched = walk.schedule()
            assert cand.macs == patch.schedule_macs(g, sched)
            exact = sched if counted else patch.without_inputs(g, sched)
            assert cand.floor <= patch.liveness_peak(g, exact)


def test_cheap_floor_holds_with_pads_and_an_in_place_depthwise_split() -> None:
    """The floor charges an in-place depthwise tile one channel of its *tile*, also when
    the depthwise is the split op (whose output buffer is the whole map)."""
    b = GraphBuilder((16, 19, 3), seed=4)
    x = b.pad(b.input, 1, 1, 1, 1)
    x = b.conv(x, 0, kernel=3, padding="VALID", depthwise=True)
    g = b.build(b.torch_style_conv(x, 0, depthwise=True))
    for counted in (True, False):
        for cand, walk in patch.candidates(g, count_input=counted):
            sched = walk.schedule()
            assert cand.macs == patch.schedule_macs(g, sched)
            exact = sched if counted else patch.without_inputs(g, sched)
            assert cand.floor <= patch.liveness_peak(g, exact), (cand.split, cand.grid)


def test_overhead_cap_is_respected() -> None:
    g = mobilenet_like(size=47)
    free = patch.search(g)
    capped = patch.search(g, max_overhead=free.overhead / 2)
    assert capped.overhead <= free.overhead / 2
    assert capped.peak >= free.peak


def test_macs_objective_picks_the_cheapest_that_fits() -> None:
    g = mobilenet_like(size=47)
    best = patch.search(g)
    budget = (best.peak + best.layer_peak) // 2
    res = patch.search(g, objective="macs", budget=budget)
    assert res.peak <= budget
    assert res.macs <= best.macs
    with pytest.raises(TinymcuError):
        patch.search(g, objective="macs")


def test_auto_schedule_prefers_per_layer_when_it_fits() -> None:
    g = mobilenet_like(size=47)
    layer_peak = plan(g, layer_schedule(g)).arena_bytes
    assert patch.auto_schedule(g, layer_peak).kind == "layer"
    tight = patch.auto_schedule(g, layer_peak - 1)
    assert tight.kind == "patch"
    assert plan(g, tight).arena_bytes <= layer_peak - 1
    # nothing fits: the lowest-peak schedule, so the caller can report by how much
    hopeless = patch.auto_schedule(g, 64)
    assert plan(g, hopeless).arena_bytes == patch.search(g).peak


def test_counting_without_the_input_image_is_lower() -> None:
    g = mobilenet_like(size=47)
    sched = patch.search(g).schedule
    image = g.tensors[g.inputs[0]].nbytes
    full = patch.arena_bytes(g, sched)
    assert full - image <= patch.arena_bytes(g, sched, count_input=False) < full


# --- real models against TFLM ----------------------------------------------------------------

def _tflm_check(path: Path, graph: Graph, sched: Schedule) -> None:
    from tinymcu.mcu_runtime.oracle import tflm_invoke

    inputs = random_inputs(graph, 1)
    got = run(graph, sched, inputs)
    want = tflm_invoke(str(path), inputs)
    layer = run(graph, layer_schedule(graph), inputs)
    for a, b, c in zip(got, want, layer, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


SHARED = ["vww_96_int8.tflite", "person_detect.tflite", "pretrainedResnet_quant.tflite",
          "kws_ref_model.tflite"]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHARED)
def test_shared_models_patch_bit_exact_with_tflm(name: str) -> None:
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    path = DATA / name
    graph = load_tflite(path.read_bytes())
    splits = patch.split_candidates(graph)
    assert splits, f"{name}: no split applies"
    res = patch.search(graph)
    assert res.peak <= res.layer_peak
    text = res.schedule.to_json()
    assert Schedule.from_json(text).to_json() == text
    _tflm_check(path, graph, Schedule.from_json(text))


@pytest.mark.slow
def test_keras_mobilenetv2_patch_bit_exact_with_tflm(keras_mobilenetv2: Path) -> None:
    """Keras MobileNetV2 (ZeroPadding + VALID stride-2 depthwise, residual ADDs) at 40×40."""
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    path = keras_mobilenetv2
    graph = load_tflite(path.read_bytes())
    res = patch.search(graph)
    assert res.peak < res.layer_peak
    _tflm_check(path, graph, res.schedule)
    deepest = max(patch.split_candidates(graph))
    h, w = graph.tensors[graph.ops[deepest].outputs[0]].shape[1:3]
    _tflm_check(path, graph, patch.patch_schedule(graph, deepest, min(h, w)))


@pytest.mark.slow
def test_exported_torch_mobilenetv2_patch_bit_exact_with_tflm(torch_mobilenetv2: Path) -> None:
    """The first op of an exported PyTorch CNN is a PAD: before PAD could be tiled, no
    patch schedule applied to such models at all."""
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    graph = load_tflite(torch_mobilenetv2.read_bytes())
    pads = [op.index for op in graph.ops if op.kind == "PAD"]
    assert pads and pads[0] == 0
    res = patch.search(graph)
    assert any(graph.ops[i].kind == "PAD" for i in range(res.split + 1))
    assert res.peak * 3 < res.layer_peak
    _tflm_check(torch_mobilenetv2, graph, res.schedule)
    # the deepest split before the head, as many tiles as the map allows, crosses three PADs
    deepest = max(patch.split_candidates(graph))
    assert sum(graph.ops[i].kind == "PAD" for i in range(deepest + 1)) >= 3
    h, w = graph.tensors[graph.ops[deepest].outputs[0]].shape[1:3]
    _tflm_check(torch_mobilenetv2, graph, patch.patch_schedule(graph, deepest, min(h, w)))
