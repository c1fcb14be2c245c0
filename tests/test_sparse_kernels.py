"""The sparse C kernels (per-row non-zero lists, the bitmask GEMM and the decoded bitmask
rows for CONV_2D and FULLY_CONNECTED, the tap tables of depthwise channels and of list
rows without im2col buffer, every requantization form) equal the Python reference
kernels — on the host and, built as firmware, on QEMU's Cortex-M4 and Cortex-M0 — and the
format plan keeps the weights within the bitmask format's flash.

Random pruned graphs — channels that are not multiples of 4, strides 1 and 2, SAME and
VALID, 1x1 and window convs, densities down to all-zero rows and tap gaps longer than one
list entry spans — are generated with ``sparse=True``, compiled on the host and run next to
``emulate()`` (the numpy reference kernels) for the layer schedule, the patch schedule and
``--optimize memory`` (no im2col buffer: the direct walks)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from patch_graphs import GraphBuilder
from test_codegen import CC, build, run_c

from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.build import build_firmware
from tinymcu.firmware_templates.qemu import parse_run, run_qemu
from tinymcu.firmware_templates.targets import get_target
from tinymcu.mcu_runtime import ops, patch
from tinymcu.mcu_runtime.check import sparse_weight_bytes
from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.codegen.emitters import SPARSE_FORM
from tinymcu.mcu_runtime.codegen.sparse import MAX_GAP, plan_formats, sparse_row_lists
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.ops.conv import set_optimize, set_sparse, sparse_block_columns
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")


def decode_lists(entries: np.ndarray, counts: np.ndarray, k: int) -> np.ndarray:
    """The (O, K) filter back from its lists, walking them as the C kernels do."""
    rows = np.zeros((len(counts), k), np.int64)
    pairs = entries.reshape(-1, 2)
    e = 0
    for o, n in enumerate(counts):
        t = 0
        for delta, value in pairs[e:e + n]:
            t += int(delta)
            assert 0 <= t < k
            rows[o, t] += int(np.int8(np.uint8(value)))
        e += n
    assert e == len(pairs)
    return rows


@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 900), o=st.integers(1, 9),
       density=st.floats(0.0, 1.0))
@settings(max_examples=60, deadline=None)
def test_row_lists_round_trip(seed: int, k: int, o: int, density: float) -> None:
    rng = np.random.default_rng(seed)
    rows = rng.integers(-128, 128, (o, k)).astype(np.int8)
    rows[rng.random((o, k)) >= density] = 0
    entries, counts = sparse_row_lists(rows)
    np.testing.assert_array_equal(decode_lists(entries, counts, k), rows)
    assert counts.sum() >= np.count_nonzero(rows)
    assert entries.reshape(-1, 2)[:, 0].max(initial=0) <= MAX_GAP


def test_long_gaps_and_empty_rows_take_zero_entries() -> None:
    rows = np.zeros((3, 700), np.int8)
    rows[0, 600] = -5  # one weight 600 taps in: two 255-tap escapes, then the weight
    rows[2, 0] = 7
    entries, counts = sparse_row_lists(rows)
    assert counts.tolist() == [3, 0, 1]
    assert entries.tolist() == [255, 0, 255, 0, 90, 251, 0, 7]


def prune(graph: Graph, rng: np.random.Generator, density: float) -> Graph:
    """Keep a ``density`` share of every filter's weights (at random), and zero whole
    output rows of some filters."""
    tensors = list(graph.tensors)
    for t in tensors:
        if t.is_const and t.dtype == "int8" and t.data.ndim >= 2:
            w = np.where(rng.random(t.data.shape) < density, t.data, 0).astype(np.int8)
            if w.ndim == 4 and w.shape[0] > 1:  # conv rows (depthwise: one row of taps)
                w[rng.random(w.shape[0]) < 0.2] = 0
            tensors[t.index] = replace(t, data=w)
    return replace(graph, tensors=tensors)


def random_graph(rng: np.random.Generator) -> Graph:
    """Input, one or two convs (1x1 or window, stride 1/2, SAME/VALID), each maybe followed
    by a depthwise, then a fully-connected head or nothing."""
    b = GraphBuilder((int(rng.integers(3, 12)), int(rng.integers(3, 12)),
                      int(rng.integers(1, 40))), seed=int(rng.integers(1 << 30)))
    x = b.input
    for _ in range(int(rng.integers(1, 3))):
        kernel = int(rng.choice([1, 3, 5]))
        stride = int(rng.integers(1, 3))
        padding = str(rng.choice(["SAME", "VALID"]))
        _, h, w, _ = b.shape(x)
        if padding == "VALID" and kernel > min(h, w):
            padding = "SAME"
        x = b.conv(x, int(rng.integers(1, 30)), kernel=kernel, stride=stride, padding=padding,
                   activation=str(rng.choice(["NONE", "RELU", "RELU6"])))
        if rng.random() < 0.5:
            x = b.conv(x, 0, kernel=int(rng.choice([3, 5])), stride=int(rng.integers(1, 3)),
                       depthwise=True, activation="NONE")
    # a head (FULLY_CONNECTED) or the last conv's own output, unclamped by pooling
    return b.build(b.head(x, int(rng.integers(2, 12))) if rng.random() < 0.5 else x)


def check_c_equals_reference(graph: Graph, out: Path, rng: np.random.Generator) -> str:
    """Generate sparse C for the layer and (when one exists) the patch schedule, run it on
    random inputs and compare with ``emulate()``; the layer model's C text."""
    shape = graph.tensors[graph.inputs[0]].shape
    inputs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(3)]
    schedules = [layer_schedule(graph)]
    try:
        schedules.append(patch.search(graph).schedule)
    except TinymcuError:
        pass  # no legal split
    text = ""
    for k, sched in enumerate(schedules):
        p = plan(graph, sched)
        generate(graph, p, out / str(k), sparse=True)
        text = text or (out / str(k) / "model.c").read_text()
        ys = run_c(build(out / str(k)), inputs, graph.tensors[graph.outputs[0]].shape)
        for i, (x, y) in enumerate(zip(inputs, ys, strict=True)):
            np.testing.assert_array_equal(y, emulate(graph, p, [x], seed=i).outputs[0],
                                          err_msg=f"{sched.kind} input {i}")
    return text


@settings(max_examples=14, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1),
       density=st.sampled_from([0.0, 0.03, 0.1, 0.3, 0.6, 0.9]), memory=st.booleans())
def test_sparse_c_kernels_equal_the_reference(seed: int, density: float, memory: bool,
                                              tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    graph = prune(random_graph(rng), rng, density)
    if memory:  # no im2col buffer: window convs stored as lists walk the taps directly
        graph = set_optimize(graph, "memory")
    text = check_c_equals_reference(graph, tmp_path / f"c{seed}", rng)
    formats = set(plan_formats(graph).values())
    assert ("_nz[" in text) == ("lists" in formats)
    assert ("_mask[" in text) == ("mask" in formats)


def prune_rows(graph: Graph, rng: np.random.Generator, density: float) -> Graph:
    """Prune every filter row (an output channel; a depthwise channel's taps) to its own
    density: all weights kept, none, or ``density`` of them at random."""
    tensors = list(graph.tensors)
    for op in graph.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        t = tensors[op.inputs[1]]
        w = np.asarray(t.data).copy()
        rows = w.reshape(-1, w.shape[-1]).T if op.kind == "DEPTHWISE_CONV_2D" else \
            w.reshape(w.shape[0], -1)
        for r in rows:  # a view: rows of w
            keep = rng.choice([0.0, 1.0, density])
            r[rng.random(r.size) >= keep] = 0
        tensors[t.index] = replace(t, data=w)
    return replace(graph, tensors=tensors)


def extreme_zero_points(graph: Graph, rng: np.random.Generator) -> Graph:
    """Every activation's zero point at -128, 127 or as built (the requantization's
    folded zero point and the border's zero-point bytes at their limits)."""
    tensors = list(graph.tensors)
    for t in tensors:
        if not t.is_const and t.dtype == "int8" and t.quant is not None:
            zp = int(rng.choice([-128, 127, int(t.quant.zero_point[0])]))
            tensors[t.index] = replace(t, quant=replace(
                t.quant, zero_point=np.full_like(t.quant.zero_point, zp)))
    return replace(graph, tensors=tensors)


def sparse_graph(seed: int, density: float) -> Graph:
    """A random graph (random_graph) planned as a --sparse build plans it (set_sparse: im2col
    blocks for window convs), rows pruned to 0, 1 or ``density``, extreme zero points."""
    rng = np.random.default_rng(seed)
    g = extreme_zero_points(prune_rows(random_graph(rng), rng, density), rng)
    return set_sparse(g)


@settings(max_examples=12, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), density=st.sampled_from([0.05, 0.1, 0.3, 0.7]))
def test_sparse_build_kernels_equal_the_reference(seed: int, density: float,
                                                  tmp_path: Path) -> None:
    """With the sparse build's plan (im2col blocks), rows of every density from none to
    all, odd channel counts and zero points at -128 and 127, the C kernels — the window
    convs' blocks, the fully-connected head through the 1x1 rows, the padded-plane
    depthwise — equal the reference for the layer and patch schedules."""
    graph = sparse_graph(seed, density)
    text = check_c_equals_reference(graph, tmp_path / f"s{seed}", np.random.default_rng(seed))
    assert "#define TM_SPARSE_PATHS " in text


def test_window_convs_plan_im2col_blocks() -> None:
    """A sparse build plans its window convs a block of columns (a multiple of 4 within
    SPARSE_BLOCK_BYTES, at least 4, at most the output's pixels); the dense plan keeps the
    GEMM's two, and a 1x1 conv none."""
    b = GraphBuilder((9, 7, 5), seed=2)
    x = b.conv(b.input, 6, kernel=3, activation="NONE")  # K = 45: 22 fit, 20 planned
    x = b.conv(x, 7, kernel=1, activation="NONE")
    x = b.conv(x, 3, kernel=5, stride=4, activation="NONE")  # K = 175: 5 fit, 4 of 6 pixels
    g = b.build(x)
    dense = [ops.step_scratch(g, s) for s in layer_schedule(g).steps]
    sparse_g = set_sparse(g)
    assert [sparse_block_columns(op, sparse_g) for op in (g.ops[0], g.ops[2])] == [20, 4]
    assert dense == [2 * 45, 0, 2 * 175]
    assert [ops.step_scratch(sparse_g, s) for s in layer_schedule(sparse_g).steps] == \
        [20 * 45, 0, 4 * 175]


def bitmask_window_graph() -> Graph:
    """A 3x3 conv over 7x5x11 pruned to 40 % (the bitmask), as a sparse build plans it."""
    b = GraphBuilder((7, 5, 11), seed=5)
    g = b.build(b.conv(b.input, 9, kernel=3, activation="NONE"))
    return set_sparse(prune(g, np.random.default_rng(4), 0.4))


def test_bitmask_window_conv_runs_im2col_blocks(tmp_path: Path) -> None:
    """A moderately pruned 3x3 conv (the bitmask, 99 taps a row) in a sparse build's plan
    decodes its rows once per block of im2col columns (tm_conv2d_mask_rows; a 7x5 map in
    blocks of 8: a last block of 3), bit-exact with the reference, for the layer and the
    patch schedule."""
    g = bitmask_window_graph()
    assert set(plan_formats(g).values()) == {"mask"}
    assert sparse_block_columns(g.ops[0], g) == 8
    text = check_c_equals_reference(g, tmp_path / "mb", np.random.default_rng(6))
    assert "tm_conv2d_mask_rows(" in text and "tm_conv2d_masked(" not in text


def lists_graph() -> Graph:
    """A 1x1 conv, a strided 5x5 SAME conv and a fully-connected head pruned to 4 %."""
    b = GraphBuilder((7, 7, 45), seed=3)
    x = b.conv(b.input, 13, kernel=1, activation="NONE")
    x = b.conv(x, 6, kernel=5, stride=2, padding="SAME", activation="NONE")
    return prune(b.build(b.head(x, 5)), np.random.default_rng(70), 0.04)


def bitmask_graph() -> Graph:
    """The same with a depthwise between the convs, pruned to 35 % (the bitmask)."""
    b = GraphBuilder((7, 7, 45), seed=4)
    x = b.conv(b.input, 13, kernel=1, activation="NONE")
    x = b.conv(x, 0, kernel=3, depthwise=True, activation="NONE")
    x = b.conv(x, 6, kernel=5, stride=2, padding="SAME", activation="NONE")
    return prune(b.build(b.head(x, 5)), np.random.default_rng(80), 0.35)


def test_each_list_kernel_runs(tmp_path: Path) -> None:
    """One graph whose convs all take the lists: a 1x1 (the 4-column pointwise GEMM, 23
    pixels: tails of 2 and 1), a strided 5x5 SAME window (im2col columns, padding), the same
    with --optimize memory (the direct walk) and a fully-connected head."""
    rng = np.random.default_rng(7)
    g = lists_graph()
    for memory in (False, True):
        graph = set_optimize(g, "memory") if memory else g
        text = check_c_equals_reference(graph, tmp_path / f"m{memory}", rng)
        assert text.count("tm_conv2d_lists(") == 2 and "tm_fully_connected_sparse(" in text


def test_each_bitmask_kernel_runs(tmp_path: Path) -> None:
    """The same shapes moderately pruned take the bitmask: the 1x1 rows decoded into lists
    (45 taps, rows not byte aligned), its GEMM over im2col columns (325 taps), the direct
    loop with --optimize memory, the fully-connected bitmask GEMM, and a depthwise tap
    table."""
    rng = np.random.default_rng(8)
    g = bitmask_graph()
    assert set(plan_formats(g).values()) == {"mask"}
    for memory in (False, True):
        graph = set_optimize(g, "memory") if memory else g
        text = check_c_equals_reference(graph, tmp_path / f"m{memory}", rng)
        # the 1x1's rows take the row paths alone; the 325-tap window the bitmask GEMM
        assert text.count("tm_conv2d_mask_rows(") == 1 and text.count("tm_conv2d_masked(") == 1
        assert "tm_fully_connected_sparse(" in text


def test_wide_bitmask_pointwise_takes_the_pixel_gemm(tmp_path: Path) -> None:
    """A bitmask 1x1 over more than TM_MASK_ROW (128) input channels does not fit the
    decoded-row buffer: it runs the bitmask GEMM over the input pixels, bit-exact too."""
    rng = np.random.default_rng(9)
    b = GraphBuilder((5, 3, 131), seed=6)
    g = prune(b.build(b.conv(b.input, 9, kernel=1, activation="NONE")), rng, 0.35)
    assert set(plan_formats(g).values()) == {"mask"}
    text = check_c_equals_reference(g, tmp_path / "wide", rng)
    assert "tm_conv2d_masked(" in text


@given(seed=st.integers(0, 2**31 - 1), density=st.floats(0.0, 1.0))
@settings(max_examples=25, deadline=None)
def test_the_format_plan_stays_within_the_bitmask_budget(seed: int, density: float) -> None:
    """Whatever it upgrades, the planned filters take no more bytes than the bitmask format
    (``check.sparse_weight_bytes``' count of them), and a lists filter is only chosen for
    a kind the sparse GEMM runs."""
    rng = np.random.default_rng(seed)
    graph = prune(random_graph(rng), rng, density)
    formats = plan_formats(graph)
    by_tensor = {op.inputs[1]: op for op in graph.ops if op.kind in
                 ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}
    used = mask = 0
    for t, fmt in formats.items():
        w = np.asarray(graph.tensors[t].data)
        op = by_tensor[t]
        rows = w.reshape(w.shape[0], -1) if op.kind != "DEPTHWISE_CONV_2D" else \
            w.reshape(-1, w.shape[-1]).T
        mask += (w.size + 7) // 8 + int(np.count_nonzero(w))
        if fmt == "lists":
            assert op.kind in ("CONV_2D", "FULLY_CONNECTED")
            entries, counts = sparse_row_lists(rows)
            used += entries.size + counts.size * (1 if counts.max(initial=0) <= 255 else 2)
        else:
            assert fmt == "mask"
            used += (w.size + 7) // 8 + int(np.count_nonzero(w))
    assert used <= mask
    others = sum(t.nbytes for t in graph.tensors if t.is_const and t.dtype != "int8")
    assert mask == sparse_weight_bytes(graph) - others


def _keep_taps(rows: np.ndarray, keep: list[int], rng: np.random.Generator) -> np.ndarray:
    """Filter rows (one per output channel) with row r keeping ``keep[r % len(keep)]``
    random taps, each non-zero, and the rest zero."""
    out = np.zeros_like(rows)
    for r in range(len(out)):
        kept = rng.choice(rows.shape[1], min(keep[r % len(keep)], rows.shape[1]),
                          replace=False)
        out[r, kept] = np.where(rows[r, kept] == 0, 1, rows[r, kept])
    return out


def tap_table_graph(bias: int | None = None) -> Graph:
    """A dilated 3x3 depthwise (in place) whose channels keep 0, 1, 1, 2 or 3 taps (one-tap runs,
    several taps, filled channels), a 7x7 depthwise of multiplier 2 (not in place) keeping
    40 of 49 taps (over TM_TAPS: the per-weight walk) and a strided 5x5 conv whose rows
    keep 0, 1, 3 or 40 of 150 taps (the list rows' tap tables and, without im2col buffer,
    the pixel walk of the long rows); NONE (the full int8 range), RELU6 (a clamp) and —
    with ``bias`` on the conv's first channel, too large for the short requantization —
    the exact form."""
    rng = np.random.default_rng(12)
    b = GraphBuilder((9, 8, 6), seed=11)
    x = b.conv(b.input, 0, kernel=3, dilation=2, depthwise=True, activation="NONE")
    x = b.conv(x, 0, kernel=7, depthwise=True, activation="RELU6", multiplier=2)
    x = b.conv(x, 7, kernel=5, stride=2, activation="NONE")
    g = b.build(x)
    tensors = list(g.tensors)
    for op, keep in zip(g.ops, ([0, 1, 1, 2, 3, 1], [40], [0, 1, 3, 40]), strict=True):
        w = np.asarray(tensors[op.inputs[1]].data)
        if op.kind == "DEPTHWISE_CONV_2D":  # 1HW(C): a row per channel is a column
            pruned = _keep_taps(w.reshape(-1, w.shape[-1]).T, keep, rng).T.reshape(w.shape)
        else:
            pruned = _keep_taps(w.reshape(w.shape[0], -1), keep, rng).reshape(w.shape)
        tensors[op.inputs[1]] = replace(tensors[op.inputs[1]], data=pruned)
    if bias is not None:
        t = tensors[g.ops[2].inputs[2]]
        data = np.asarray(t.data).copy()
        data[0] = bias
        tensors[t.index] = replace(t, data=data)
    return replace(g, tensors=tensors)


@pytest.mark.parametrize("bias", [None, 600_000_000])
def test_each_tap_table_path(bias: int | None, tmp_path: Path) -> None:
    """The tap-table kernels equal the reference in every path of tap_table_graph, in place
    and not (the planner's choice per schedule), with and without im2col buffer. The model
    lists the requantization forms its sparse ops take (TM_SPARSE_FORMS: the full-range
    depthwise and conv, the clamped RELU6 depthwise and, with the unbounded bias, the
    exact conv), so the kernels compile in those only."""
    g = tap_table_graph(bias)
    assert plan_formats(g)[g.ops[0].inputs[1]] == "mask"
    for memory in (False, True):
        graph = set_optimize(g, "memory") if memory else g
        text = check_c_equals_reference(graph, tmp_path / f"m{memory}", np.random.default_rng(3))
        assert "tm_depthwise_masked(" in text and "tm_depthwise_masked_inplace(" in text
        forms = SPARSE_FORM["full"] | SPARSE_FORM["fast"] | (SPARSE_FORM["exact"] if bias else 0)
        assert f"#define TM_SPARSE_FORMS {forms}\n" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or
                    shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")
@pytest.mark.parametrize("board", ["qemu-mps2-an386", "qemu-microbit"])
def test_sparse_kernels_on_cortex_m4_and_m0(board: str, tmp_path: Path) -> None:
    """The kernel graphs above built as firmware equal the emulator under QEMU: on the
    Cortex-M4 the DSP paths (inline assembly, SSAT), on the Cortex-M0 the portable ones
    (no DSP, no CLZ, an unaligned word access faults)."""
    rng = np.random.default_rng(5)
    graphs = {"lists": lists_graph(), "bitmask": bitmask_graph(),
              "taps": tap_table_graph(), "exact": set_optimize(tap_table_graph(6 << 27),
                                                               "memory")}
    # and as a --sparse build plans them: the im2col blocks
    graphs.update({f"{name}-blocks": set_sparse(tap_table_graph() if name == "taps" else
                                                 (lists_graph, bitmask_graph)[k]())
                   for k, name in enumerate(("lists", "bitmask", "taps"))},
                  window=bitmask_window_graph())
    for name, g in graphs.items():
        run_on_qemu(g, board, tmp_path / name, rng, name)


def run_on_qemu(g: Graph, board: str, out: Path, rng: np.random.Generator, name: str) -> None:
    """``g`` (layer schedule) built as sparse firmware for ``board`` equals the emulator
    under QEMU on a random input."""
    t = get_target(board)
    assert t.qemu_machine is not None
    p = plan(g, layer_schedule(g))
    generate(g, p, out / "model", sparse=True)
    x = rng.integers(-128, 128, g.tensors[g.inputs[0]].shape).astype(np.int8)
    fw = build_firmware(out / "model", board, out / "fw", input=x)
    run = parse_run(run_qemu(fw.elf, timeout=60, machine=t.qemu_machine, serial=t.qemu_serial))
    np.testing.assert_array_equal(run.output, emulate(g, p, [x]).outputs[0].ravel(),
                                  err_msg=f"{board} {name}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or
                    shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")
@settings(max_examples=8, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), density=st.sampled_from([0.05, 0.1, 0.3, 0.7]),
       board=st.sampled_from(["qemu-mps2-an386", "qemu-microbit"]))
@example(seed=197, density=0.05, board="qemu-microbit")  # a 2-byte mask: GCC's over-read error
def test_sparse_build_kernels_on_qemu(seed: int, density: float, board: str,
                                      tmp_path: Path) -> None:
    """sparse_graph's random graphs (every row density, extreme zero points, the sparse
    build's plan) as firmware: the Cortex-M4's assembly loops (the 1x1 rows' word pairs,
    the one-tap runs, the four-pixel tap runs) and the Cortex-M0's portable C equal the
    emulator."""
    run_on_qemu(sparse_graph(seed, density), board, tmp_path / f"q{seed}",
                np.random.default_rng(seed), f"seed {seed}")
