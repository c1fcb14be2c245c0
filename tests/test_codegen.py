"""The C99 runtime and its code generator, proven against the emulator and TFLM.

Every test compiles the generated ``model.c`` with the host gcc under ``-std=c99 -Wall
-Wextra -Werror -pedantic -O2`` together with a small harness that first fills the whole
arena with pseudo-random junk, then runs several inputs back to back (so nothing may depend
on a zeroed arena or on what the previous inference left behind). The outputs must equal
the emulator's on the *same plan* and TFLM's, bit for bit: per-layer schedules, patch
schedules (tiles, halos, border-only pads, in-place depthwise on tiles) and fused
EXPAND_DEPTHWISE ops, on the shared models and on random graphs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patch_graphs import GraphBuilder, _quant, mobilenet_like, random_stack
from test_emulator import input_sets

from tinymcu import cli
from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle, patch
from tinymcu.mcu_runtime.check import sparse_weight_bytes
from tinymcu.mcu_runtime.codegen import codegen_model, generate, supported
from tinymcu.mcu_runtime.emulator import buffer_lifetimes, emulate
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.passes import fold_pads, fuse_expand_depthwise
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule

DATA = Path(__file__).parent / "data"
CC = shutil.which("gcc") or shutil.which("cc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")

HARNESS = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"

/* Junk-fill the arena, then run every input record of argv[1] back to back (the state
 * carries over; with argv[3] = "reset", tinymcu_reset() before each), writing each output
 * record to argv[2]. */
int main(int argc, char **argv) {
    static int8_t in[TINYMCU_INPUT_BYTES];
    static int8_t out[TINYMCU_OUTPUT_BYTES];
    uint32_t state = 0x2545F491u;
    uint8_t *arena = tinymcu_arena();
    int reset = argc == 4 && strcmp(argv[3], "reset") == 0; /* stateless: nothing to reset */
    FILE *fi;
    FILE *fo;
    long i;
    if (argc < 3) {
        return 2;
    }
    (void)reset;
    for (i = 0; i < TINYMCU_ARENA_BYTES; ++i) {
        state = state * 1664525u + 1013904223u;
        arena[i] = (uint8_t)(state >> 24);
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) {
        return 2;
    }
    while (fread(in, 1, TINYMCU_INPUT_BYTES, fi) == TINYMCU_INPUT_BYTES) {
#ifdef TINYMCU_HAS_STATE
        if (reset) {
            tinymcu_reset();
        }
#endif
        if (tinymcu_invoke(in, out) != 0) {
            return 3;
        }
        fwrite(out, 1, TINYMCU_OUTPUT_BYTES, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"""


#: AddressSanitizer (any access outside the arena or a constant array aborts) and
#: UndefinedBehaviorSanitizer (signed overflow, bad shifts, misalignment abort)
SANITIZE = ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def build(src: Path, extra: tuple[str, ...] = ()) -> Path:
    """Compile the generated model in ``src`` with the harness; the executable's path."""
    (src / "main.c").write_text(HARNESS)
    exe = src / "model.bin"
    proc = subprocess.run([CC, *CFLAGS, *extra, "-I", str(src), str(src / "model.c"),
                           str(src / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exe


def run_c(exe: Path, inputs: list[np.ndarray], out_shape: tuple[int, ...],
          reset: bool = False, dtype: str = "int8") -> list[np.ndarray]:
    """Run the compiled model on each input, in one process (one arena) back to back; a
    stateful model carries its state from one input to the next unless ``reset``."""
    src, dst = exe.parent / "inputs.bin", exe.parent / "outputs.bin"
    src.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
    args = [str(exe), str(src), str(dst)] + (["reset"] if reset else [])
    proc = subprocess.run(args, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    ys = np.frombuffer(dst.read_bytes(), dtype=dtype)
    return list(ys.reshape(len(inputs), *out_shape))


def compile_and_run(graph: Graph, p, inputs: list[np.ndarray], out: Path,
                    sparse: bool = False) -> list[np.ndarray]:
    generate(graph, p, out, sparse=sparse)
    return run_c(build(out), inputs, graph.tensors[graph.outputs[0]].shape)


def assert_c_equals_emulator(graph: Graph, p, inputs: list[np.ndarray], out: Path,
                             sparse: bool = False) -> None:
    ours = compile_and_run(graph, p, inputs, out, sparse)
    for k, (x, y) in enumerate(zip(inputs, ours, strict=True)):
        expected = emulate(graph, p, [x], seed=k).outputs[0]
        np.testing.assert_array_equal(y, expected, err_msg=f"input {k}, {p.schedule.kind}")


# -- the shared models: C == emulator == TFLM -------------------------------------------------

#: model → the schedules generated for it ((schedule, fuse) pairs). Patch schedules for
#: every model with a spatial first stage; fusion where a model has fusable pairs.
SHARED = {
    "kws_ref_model": [("layer", False), ("patch", False)],
    "vww_96_int8": [("layer", False), ("patch", False), ("layer", True), ("patch", True)],
    "person_detect": [("layer", False), ("patch", False)],
    "pretrainedResnet_quant": [("layer", False), ("patch", False)],
    "ad01_int8": [("layer", False)],
    "hello_world_int8": [("layer", False)],
    "micro_speech_quantized": [("layer", False)],
    "str_ww_ref_model": [("layer", False), ("layer", True)],
}
SLOW = {"vww_96_int8", "person_detect", "pretrainedResnet_quant"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in SHARED])
def test_shared_model_c_bit_exact_with_tflm_and_emulator(name: str, tmp_path: Path) -> None:
    path = DATA / f"{name}.tflite"
    results = {}
    for schedule, fuse in SHARED[name]:
        out = tmp_path / f"{schedule}{'_fused' if fuse else ''}"
        results[schedule, fuse] = codegen_model(path, out, schedule=schedule, fuse=fuse)
    graph = results["layer", False].graph
    sets = input_sets(name, graph)
    inputs = [s[0] for s in sets]
    tflm = [o[0] for o in oracle.tflm_invoke_batch(path, sets)]
    for (schedule, fuse), r in results.items():
        assert r.schedule == schedule, f"{name}: no {schedule} schedule"
        header = (r.files[0].parent / "model.h").read_text()
        assert f"#define TINYMCU_ARENA_BYTES {r.plan.arena_bytes}\n" in header
        ours = run_c(build(r.files[0].parent), inputs, r.graph.tensors[r.graph.outputs[0]].shape)
        for k, (x, y, t) in enumerate(zip(inputs, ours, tflm, strict=True)):
            what = f"{name} {schedule} fuse={fuse} input {k}"
            np.testing.assert_array_equal(y, t.reshape(y.shape), err_msg=f"{what}: C vs TFLM")
            np.testing.assert_array_equal(y, emulate(r.graph, r.plan, [x], seed=k).outputs[0],
                                          err_msg=f"{what}: C vs emulator")


def test_kws_sample_is_class_5_and_depthwise_runs_in_place(tmp_path: Path) -> None:
    r = codegen_model(DATA / "kws_ref_model.tflite", tmp_path / "kws")
    sample = np.load(DATA / "kws_sample_input_int8.npy")
    y = run_c(build(tmp_path / "kws"), [sample], (1, 12))[0]
    assert int(np.argmax(y)) == 5
    # the proof covers in-place execution: some depthwise writes over its own input
    sched = r.plan.schedule
    shared = [s for s in sched.steps if r.graph.ops[s.op].kind == "DEPTHWISE_CONV_2D"
              and r.plan.offsets[s.io[r.graph.ops[s.op].inputs[0]]]
              == r.plan.offsets[s.io[r.graph.ops[s.op].outputs[0]]]]
    assert shared
    assert "tm_depthwise_inplace(" in (tmp_path / "kws" / "model.c").read_text()


@pytest.mark.slow
def test_fused_vww_needs_less_sram_and_emits_fused_calls(tmp_path: Path) -> None:
    plain = codegen_model(DATA / "vww_96_int8.tflite", tmp_path / "plain")
    fused = codegen_model(DATA / "vww_96_int8.tflite", tmp_path / "fused", fuse=True)
    source = (tmp_path / "fused" / "model.c").read_text()
    assert source.count("tm_expand_depthwise(&") == 4
    assert fused.arena_bytes < plain.arena_bytes
    assert fused.steps == plain.steps - 4
    # auto: op by op does not fit 48 KiB, so the patch schedule is generated
    auto = codegen_model(DATA / "vww_96_int8.tflite", tmp_path / "auto", schedule="auto",
                         sram_bytes=48 * 1024)
    assert auto.schedule == "patch" and auto.arena_bytes <= 48 * 1024 < plain.arena_bytes


def test_arena_is_one_bss_array_of_exactly_the_planned_size(tmp_path: Path) -> None:
    """Measured on the object file: the only writable data is the arena (in .bss, exactly
    plan.arena_bytes), everything else the model needs is read-only (flash). Built without
    PIC like firmware (a PIE build would put the pointer-holding parameter structs in
    .data.rel.ro, read-only after relocation)."""
    r = codegen_model(DATA / "kws_ref_model.tflite", tmp_path / "kws")
    obj = tmp_path / "model.o"
    subprocess.run([CC, *CFLAGS, "-fno-pic", "-c", "-I", str(tmp_path / "kws"),
                    str(tmp_path / "kws" / "model.c"), "-o", str(obj)], check=True)
    sized = _symbol_sizes(obj)
    assert sized["tm_arena"] == ("b", r.plan.arena_bytes)
    writable = [n for n, (kind, _) in sized.items() if kind.lower() in "bdgs" and n != "tm_arena"]
    assert writable == []
    assert all(kind.lower() == "r" for n, (kind, _) in sized.items() if n.startswith("op"))


def test_builds_for_cortex_m4(tmp_path: Path) -> None:
    """The same sources cross-compile for the target, with the arena in .bss."""
    arm = shutil.which("arm-none-eabi-gcc")
    size = shutil.which("arm-none-eabi-size")
    if arm is None or size is None:
        pytest.skip("needs arm-none-eabi-gcc")
    r = codegen_model(DATA / "kws_ref_model.tflite", tmp_path / "kws")
    obj = tmp_path / "model.o"
    subprocess.run([arm, "-mcpu=cortex-m4", "-mthumb", *CFLAGS, "-c",
                    "-I", str(tmp_path / "kws"), str(tmp_path / "kws" / "model.c"),
                    "-o", str(obj)], check=True)
    text, data, bss = subprocess.run([size, str(obj)], capture_output=True, text=True,
                                     check=True).stdout.splitlines()[1].split()[:3]
    assert (int(data), int(bss)) == (0, r.plan.arena_bytes)
    assert int(text) > r.const_bytes


def _sanitizer_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    return subprocess.run([CC, *SANITIZE, str(probe), "-o", str(tmp_path / "probe")],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_sanitizers_find_no_out_of_bounds_access_or_undefined_behaviour(tmp_path: Path) -> None:
    """Every kernel family, per layer and on tiles, in place and fused, dense and sparse,
    under ASan + UBSan: a read or write past the end of the arena or of a constant array, a
    signed overflow or an over-wide shift aborts the run."""
    if not _sanitizer_works(tmp_path):
        pytest.skip("the compiler has no ASan/UBSan runtime")
    cases = [  # (model, schedule, fuse, sparse)
        ("kws_ref_model", "patch", False, False),
        ("vww_96_int8", "patch", True, True),
        ("person_detect", "layer", False, True),
        ("pretrainedResnet_quant", "patch", False, False),
        ("micro_speech_quantized", "layer", False, False),
        ("ad01_int8", "layer", False, True),
    ]
    for name, schedule, fuse, sparse in cases:
        out = tmp_path / name
        r = codegen_model(DATA / f"{name}.tflite", out, schedule=schedule, fuse=fuse,
                          sparse=sparse)
        inputs = [s[0] for s in input_sets(name, r.graph, n_random=1)]
        ys = run_c(build(out, tuple(SANITIZE)), inputs, r.graph.tensors[r.graph.outputs[0]].shape)
        for k, (x, y) in enumerate(zip(inputs, ys, strict=True)):
            np.testing.assert_array_equal(y, emulate(r.graph, r.plan, [x]).outputs[0],
                                          err_msg=f"{name} {schedule} input {k}")
    graph = fuse_expand_depthwise(fold_pads(mobilenet_like(size=17, seed=5)))
    rare = rare_ops_graph(3, keep_dims=True, same_quant=False)
    for k, (g, sched) in enumerate([(graph, patch.search(graph).schedule),
                                    (rare, layer_schedule(rare))]):
        p = plan(g, sched)
        x = np.random.default_rng(k).integers(-128, 128, g.tensors[g.inputs[0]].shape)
        generate(g, p, tmp_path / f"ir{k}", sparse=k == 0)
        y = run_c(build(tmp_path / f"ir{k}", tuple(SANITIZE)), [x.astype(np.int8)],
                  g.tensors[g.outputs[0]].shape)[0]
        np.testing.assert_array_equal(y, emulate(g, p, [x.astype(np.int8)]).outputs[0])


def _symbol_sizes(obj: Path) -> dict[str, tuple[str, int]]:
    """nm's (section letter, size) of every sized symbol of an object file."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("needs nm")
    lines = subprocess.run([nm, "-S", str(obj)], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    return {s[3]: (s[2], int(s[1], 16)) for s in map(str.split, lines) if len(s) == 4}


def test_sparse_filters_are_bit_exact_and_take_the_budgeted_flash(tmp_path: Path) -> None:
    """VWW-96's filters hold many zeros: stored sparse (per filter a bitmask + non-zero
    values, or non-zero lists where those are smaller) the model still equals TFLM, and the
    measured size of those arrays is at most ``check.sparse_weight_bytes`` (the bitmask
    format prune/budget.py plans flash with) minus the non-int8 constants."""
    path = DATA / "vww_96_int8.tflite"
    r = codegen_model(path, tmp_path / "vww", sparse=True)
    dense = codegen_model(path, tmp_path / "dense")
    x = np.random.default_rng(4).integers(-128, 128, (1, 96, 96, 3)).astype(np.int8)
    y = run_c(build(tmp_path / "vww"), [x], (1, 2))[0]
    np.testing.assert_array_equal(y, oracle.tflm_invoke(path, [x])[0])
    obj = tmp_path / "vww.o"
    subprocess.run([CC, *CFLAGS, "-c", "-I", str(tmp_path / "vww"),
                    str(tmp_path / "vww" / "model.c"), "-o", str(obj)], check=True)
    sizes = _symbol_sizes(obj)
    measured = sum(n for name, (_, n) in sizes.items()
                   if name.endswith(("_mask", "_values", "_nz", "_nz_count")))
    other = sum(t.nbytes for t in r.graph.tensors if t.is_const and t.dtype != "int8")
    assert 0.8 * (sparse_weight_bytes(r.graph) - other) < measured
    assert measured <= sparse_weight_bytes(r.graph) - other
    assert not any(name.endswith("_filter") or name.endswith("_weights") for name in sizes)
    assert r.const_bytes < dense.const_bytes / 2


def test_a_wrong_plan_changes_the_c_output(tmp_path: Path) -> None:
    """The comparison can fail: two buffers that are live together put at one offset
    corrupt the residual branch, and the compiled model's output moves."""
    graph = mobilenet_like(size=15, seed=3)
    p = plan(graph, layer_schedule(graph))
    life = buffer_lifetimes(graph, p.schedule)
    a, b = next((a, b) for a in life for b in life
                if a != b and min(life[a][1], life[b][1]) - max(life[a][0], life[b][0]) >= 1
                and p.schedule.buffers[b].nbytes <= p.schedule.buffers[a].nbytes)
    x = np.random.default_rng(0).integers(-128, 128, (1, 15, 15, 3)).astype(np.int8)
    good = compile_and_run(graph, p, [x], tmp_path / "good")[0]
    np.testing.assert_array_equal(good, emulate(graph, p, [x]).outputs[0])
    broken = replace(p, offsets={**p.offsets, b: p.offsets[a]})
    bad = compile_and_run(graph, broken, [x], tmp_path / "bad")[0]
    assert not np.array_equal(bad, good)


# -- ops the shared models do not use ---------------------------------------------------------

def _act_op(b: GraphBuilder, kind: str, inputs: list[int], shape: tuple[int, ...],
            quant=None, **attrs: object) -> int:
    return b._op(kind, inputs, b._act(shape, quant), **attrs)


def rare_ops_graph(seed: int, keep_dims: bool, same_quant: bool) -> Graph:
    """Unary look-up-table ops (RELU_N1_TO_1 too), SUB/MUL, a requantizing concatenation,
    PADV2 before a max pool, MEAN with equal and differing quantization, SQUEEZE and SOFTMAX."""
    b = GraphBuilder((7, 6, 3), seed)
    x = b.conv(b.input, 4, kernel=3, activation="NONE")
    shape = b.shape(x)
    relu = _act_op(b, "RELU", [x], shape)
    n1 = _act_op(b, "RELU_N1_TO_1", [relu], shape)
    relu6 = _act_op(b, "RELU6", [n1], shape, b.tensors[n1].quant)
    sig = _act_op(b, "LOGISTIC", [x], shape, _quant(1 / 256, -128))
    hsw = _act_op(b, "HARD_SWISH", [relu6], shape)
    req = _act_op(b, "QUANTIZE", [hsw], shape)
    mul = _act_op(b, "MUL", [sig, req], shape, activation="NONE")
    sub = _act_op(b, "SUB", [mul, relu6], shape, activation="RELU")
    cat = _act_op(b, "CONCATENATION", [sub, x, sig], (*shape[:3], 3 * shape[3]),
                  axis=3, activation="NONE")
    padded = b.pad(cat, 1, 0, 2, 1, value=-128)
    pooled = b.pool(padded, "MAX_POOL_2D", kernel=3, stride=2, padding="SAME")
    c = b.shape(pooled)[3]
    axes = b._const(np.array([1, 2], np.int32), "int32")
    q = b.tensors[pooled].quant if same_quant else None
    if keep_dims:
        m = _act_op(b, "MEAN", [pooled, axes], (1, 1, 1, c), q, keep_dims=True)
        m = _act_op(b, "SQUEEZE", [m], (1, c), b.tensors[m].quant, squeeze_dims=(1, 2))
    else:
        m = _act_op(b, "MEAN", [pooled, axes], (1, c), q, keep_dims=False)
    out = _act_op(b, "SOFTMAX", [m], (1, c), _quant(1 / 256, -128), beta=1.0)
    return b.build(out)


@pytest.mark.parametrize("keep_dims,same_quant", [(False, True), (False, False), (True, False)])
def test_rarely_used_ops_match_the_emulator(keep_dims: bool, same_quant: bool,
                                            tmp_path: Path) -> None:
    graph = rare_ops_graph(7, keep_dims, same_quant)
    rng = np.random.default_rng(1)
    inputs = [rng.integers(-128, 128, (1, 7, 6, 3)).astype(np.int8) for _ in range(3)]
    assert_c_equals_emulator(graph, plan(graph, layer_schedule(graph)), inputs, tmp_path)
    source = (tmp_path / "model.c").read_text()
    for call in ("tm_eltwise(", "tm_fill_box(", "tm_max_pool(", "tm_mean_hw(", "tm_softmax("):
        assert call in source
    assert len(re.findall(r"op\d+_lut\d* = ", source.replace("[256]", ""))) >= 6


# -- random graphs: C == emulator -------------------------------------------------------------

def pruned(graph: Graph, rng: np.random.Generator) -> Graph:
    """Zero a random share (30–95 %) of every filter, as pruning does; the largest weight
    of each filter survives."""
    tensors = list(graph.tensors)
    for t in tensors:
        if t.is_const and t.dtype == "int8" and t.data.ndim >= 2:
            keep = (rng.random(t.data.shape) < rng.uniform(0.05, 0.7)).ravel()
            keep[np.argmax(np.abs(t.data).ravel())] = True
            tensors[t.index] = replace(t, data=np.where(keep.reshape(t.data.shape), t.data, 0)
                                       .astype(np.int8))
    return replace(graph, tensors=tensors)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), mobilenet=st.booleans(), fold=st.booleans(),
       fuse=st.booleans(), sparse=st.booleans())
def test_random_graphs_layer_and_patch_c_equals_emulator(seed: int, mobilenet: bool, fold: bool,
                                                         fuse: bool, sparse: bool,
                                                         tmp_path: Path) -> None:
    """Layer and patch schedules, PADs folded or run, fused or not, dense or pruned filters
    stored sparse."""
    rng = np.random.default_rng(seed)
    graph = mobilenet_like(int(rng.integers(9, 26)), seed) if mobilenet else random_stack(rng)
    if sparse:
        graph = pruned(graph, rng)
    if fold or fuse:
        graph = fold_pads(graph)
    if fuse:
        graph = fuse_expand_depthwise(graph)
    shape = graph.tensors[graph.inputs[0]].shape
    inputs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(2)]
    schedules = [layer_schedule(graph)]
    try:
        schedules.append(patch.search(graph).schedule)
    except TinymcuError:
        pass  # no legal split (e.g. the first op is the whole graph)
    out = tmp_path / f"case{seed}-{mobilenet}-{fold}-{fuse}-{sparse}"
    for k, sched in enumerate(schedules):
        assert_c_equals_emulator(graph, plan(graph, sched), inputs, out / str(k), sparse)


# -- errors and the CLI -----------------------------------------------------------------------

def test_unsupported_graphs_are_one_line_errors(tmp_path: Path) -> None:
    b = GraphBuilder((4, 4, 2), 0)
    x = b.conv(b.input, 3, kernel=1)
    perm = b._const(np.array([0, 2, 1, 3], np.int32), "int32")
    t = _act_op(b, "TRANSPOSE", [x, perm], (1, 4, 4, 3), b.tensors[x].quant)
    graph = b.build(t)
    two = Graph(graph.tensors, graph.ops[:1], graph.inputs, [x, b.input])
    with pytest.raises(TinymcuError, match="input that is also a graph output"):
        generate(two, plan(two, layer_schedule(two)), tmp_path / "b")
    floats = b.build(x)
    floats.tensors[x] = replace(floats.tensors[x], dtype="float32")
    with pytest.raises(TinymcuError, match="output is float32"):
        generate(floats, plan(floats, layer_schedule(floats)), tmp_path / "c")
    assert {"DEQUANTIZE", "TRANSPOSE", "EXPAND_DEPTHWISE"} <= set(supported())


def test_transpose_c_equals_emulator(tmp_path: Path) -> None:
    """TRANSPOSE in C (an odometer walk over the output) on 4-D and 3-D permutations."""
    rng = np.random.default_rng(5)
    for k, (perm, shape) in enumerate((((0, 2, 1, 3), (1, 5, 4, 3)),
                                       ((0, 3, 1, 2), (1, 3, 4, 5)))):
        b = GraphBuilder((4, 5, 2), k)
        x = b.conv(b.input, 3, kernel=1)
        p = b._const(np.array(perm, np.int32), "int32")
        t = _act_op(b, "TRANSPOSE", [x, p], shape, b.tensors[x].quant, perm=perm)
        graph = b.build(t)
        inputs = [rng.integers(-128, 128, (1, 4, 5, 2), dtype=np.int8) for _ in range(20)]
        assert_c_equals_emulator(graph, plan(graph, layer_schedule(graph)), inputs,
                                 tmp_path / f"t{k}")


def test_a_plan_reaching_outside_the_arena_is_refused(tmp_path: Path) -> None:
    graph = mobilenet_like(size=11, seed=2)
    p = plan(graph, layer_schedule(graph))
    name = max(p.schedule.buffers, key=lambda b: p.schedule.buffers[b].nbytes)
    broken = replace(p, offsets={**p.offsets, name: p.arena_bytes - 1})
    with pytest.raises(TinymcuError, match="lies outside the .*-byte arena"):
        generate(graph, broken, tmp_path)


def test_prefix_names_the_files_and_cxx_can_include_the_header(tmp_path: Path) -> None:
    graph = mobilenet_like(size=11, seed=2)
    files = generate(graph, plan(graph, layer_schedule(graph)), tmp_path, prefix="net")
    assert [f.name for f in files[:2]] == ["net.h", "net.c"]
    subprocess.run([CC, *CFLAGS, "-c", "-I", str(tmp_path), str(tmp_path / "net.c"), "-o",
                    str(tmp_path / "net.o")], check=True)
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx:
        app = '#include "net.h"\nint main() { return net_run() + NET_ARENA_BYTES * 0; }\n'
        (tmp_path / "app.cpp").write_text(app)
        subprocess.run([cxx, "-Wall", "-Werror", "-I", str(tmp_path), str(tmp_path / "app.cpp"),
                        str(tmp_path / "net.o"), "-o", str(tmp_path / "app")], check=True)


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(list(args))
    captured = capsys.readouterr()
    return int(exc.value.code), captured.out, captured.err


def test_cli_writes_a_buildable_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "kws"
    code, stdout, _ = _cli(capsys, "codegen", str(DATA / "kws_ref_model.tflite"),
                           "--out", str(out), "--schedule", "auto", "--sram", "64KiB")
    assert code == 0
    assert "layer schedule" in stdout and "arena 16,000 B" in stdout
    assert {p.name for p in out.iterdir()} >= {"model.h", "model.c", "tinymcu_kernels.h"}
    sample = np.load(DATA / "kws_sample_input_int8.npy")
    assert int(np.argmax(run_c(build(out), [sample], (1, 12))[0])) == 5
    code, stdout, _ = _cli(capsys, "codegen", str(DATA / "kws_ref_model.tflite"),
                           "--out", str(out), "--sparse", "--fuse", "--schedule", "patch")
    assert code == 0 and "patch schedule" in stdout
    assert "_mask[" in (out / "model.c").read_text()  # replaced in place, now sparse
    assert int(np.argmax(run_c(build(out), [sample], (1, 12))[0])) == 5


@pytest.mark.parametrize("args,exit_code,message", [
    (["missing.tflite"], 2, "no such file"),
    (["garbage.tflite"], 2, "garbage.tflite"),
    ([str(DATA / "kws_ref_model.tflite"), "--sram", "8KiB"], 1, "> SRAM budget 8,192 B"),
    ([str(DATA / "kws_ref_model.tflite"), "--board", "nope"], 2, "unknown board"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(
        args: list[str], exit_code: int, message: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.tflite").write_bytes(b"\x00not a flatbuffer" * 7)
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("old")
    for out in (fresh, existing):
        code, _, err = _cli(capsys, "codegen", *args, "--out", str(out))
        assert code == exit_code
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not fresh.exists()
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
