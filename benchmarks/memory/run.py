"""Memory benchmark: our planner and our TFLM arena prediction against the real TFLM.

Also compares our 32-bit prediction (``--target tflm`` / ``tflm-cmsis-nn``) with the figures
measured on a real Cortex-M4 TFLM build, the ground truth in
``benchmarks/memory/tflm_cortex_m4.json`` (with their provenance).

For the MLPerf Tiny reference models, MobileNetV2 width 0.35 at 96² and 144² (seeded random
weights, full int8) and the demo model, this measures with the tflite-micro interpreter
(x86-64 wheel, child processes): the arena it records (head = planned tensors, total =
head + persistent tail) and the smallest arena it actually runs with; and computes our
``tflm`` prediction for the same 64-bit build (and for a 32-bit Cortex-M), our ``tinymcu``
arena and the liveness lower bound. Targets (issue 3): our arena <= TFLM's head on every
model and within 5% of the lower bound; the tflm prediction within 5% of TFLM's total.

Run: ``python benchmarks/memory/run.py`` (builds the MobileNetV2 models once into the
cache shared with benchmarks/patch, exports the demo model, ~2-4 minutes on 2 cores).
Writes ``benchmarks/results/memory.md``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tinymcu.mcu_runtime import execute, oracle, planner, tflm_arena
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ops.conv import set_optimize
from tinymcu.mcu_runtime.passes import fold_pads
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "memory.md"
GROUND_TRUTH = ROOT / "benchmarks" / "memory" / "tflm_cortex_m4.json"

MLPERF = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant",
          "pretrainedResnet_large_int8", "ad01_int8", "str_ww_ref_model"]
TFLM_EXAMPLES = ["person_detect", "micro_speech_quantized", "hello_world_int8"]
#: third-party models (STM32 zoo, MLTK, OpenMV, GD32, TFLM: SVDF, LSTM, float ends); the
#: predictor was fitted on none of them. Read in place: CI has ../shared beside the clone.
REALWORLD = ROOT.parent / "shared" / "models" / "realworld"


@dataclass
class Row:
    name: str
    tflm_head: int
    #: variable tensors (SVDF/LSTM state): TFLM keeps them in its tail, our planner in the
    #: arena for the whole run, so the like-for-like TFLM figure is head + state
    tflm_state: int
    tflm_total: int
    tflm_min: int
    pred_total: int
    pred_min: int
    pred_m4: int
    ours: int
    #: our arena with the fast kernels' scratch (``--optimize speed``, the default)
    ours_speed: int
    ours_greedy: int
    bound: int
    tflm_bound: int
    plan_ms: float
    exact: bool
    high_water: int

    @property
    def pred_err(self) -> float:
        return (self.pred_total - self.tflm_total) / self.tflm_total

    @property
    def min_err(self) -> float:
        return (self.pred_min - self.tflm_min) / self.tflm_min

    @property
    def ratio(self) -> float:
        return self.ours / self.bound

    @property
    def ok(self) -> bool:
        return (self.ours <= self.tflm_head + self.tflm_state and self.ours <= 1.05 * self.bound
                and abs(self.pred_err) <= 0.05 and self.exact)


def measure(name: str, path: Path) -> Row:
    """TFLM runs the graph as written; our runtime folds PAD ops into the convs after them
    (``passes.fold_pads``), as ``tinymcu check --target tinymcu`` does."""
    written = load_tflite(path)
    # like for like with TFLM's reference kernels: the direct loops, no im2col scratch
    graph = set_optimize(fold_pads(written), "memory")
    sched = layer_schedule(graph)
    start = time.perf_counter()
    ours = planner.plan(graph, sched)
    plan_ms = (time.perf_counter() - start) * 1e3
    speed = set_optimize(fold_pads(written), "speed")
    ours_speed = planner.plan(speed, layer_schedule(speed)).arena_bytes
    greedy = planner.plan(graph, sched, strategy="greedy_by_size")
    x86, m4 = tflm_arena.predict(written, 8), tflm_arena.predict(written, 4)
    # TFLM's default arena (10x the file) is too small for models with big activations
    rec = oracle.tflm_allocations(path, arena_size=max(4 * x86.min_arena, 1 << 20))
    # The proof of our arena: run the model inside it and compare with TFLM bit for bit.
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, graph.tensors[t].shape).astype(graph.tensors[t].dtype)
              for t in graph.inputs]
    emulated = emulate(graph, ours, inputs)
    expected = oracle.tflm_invoke(path, inputs, execute.verify_arena_bytes(path))
    exact = all(np.array_equal(a.reshape(b.shape), b)
                for a, b in zip(emulated.outputs, expected, strict=True))
    state = rec["types"].get("TfLiteTensor variable buffer data", {}).get("used", 0)
    return Row(name, rec["head"], state, rec["total"], oracle.tflm_min_arena(path), x86.total,
               x86.min_arena, m4.min_arena, ours.arena_bytes, ours_speed, greedy.arena_bytes,
               ours.lower_bound,
               planner.lower_bound(tflm_arena.tflm_intervals(written)), plan_ms, exact,
               emulated.high_water)


@dataclass
class PatchRow:
    name: str
    split_grid: str
    best: int
    greedy: int
    bound: int
    exact: bool
    plan_ms: float

    @property
    def ok(self) -> bool:
        return self.best <= self.greedy and self.best <= 1.05 * self.bound and self.exact


def measure_patch(name: str, path: Path) -> PatchRow:
    """Our strategies on the patch schedule ``patch.search`` picks (lowest peak)."""
    from tinymcu.mcu_runtime import patch

    graph = fold_pads(load_tflite(path))
    sched = patch.search(graph).schedule
    start = time.perf_counter()
    best = planner.plan(graph, sched)
    plan_ms = (time.perf_counter() - start) * 1e3
    greedy = planner.plan(graph, sched, strategy="greedy_by_size")
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, graph.tensors[t].shape).astype(graph.tensors[t].dtype)
              for t in graph.inputs]
    expected = oracle.tflm_invoke(path, inputs, execute.verify_arena_bytes(path))
    exact = True
    for p in (best, greedy):
        result = emulate(graph, p, inputs)
        exact &= result.high_water == p.arena_bytes and all(
            np.array_equal(a.reshape(b.shape), b)
            for a, b in zip(result.outputs, expected, strict=True))
    info = sched.info
    return PatchRow(name, f"{info.get('split')} / {info.get('grid')}x{info.get('grid')}",
                    best.arena_bytes, greedy.arena_bytes, best.lower_bound, exact, plan_ms)


@dataclass
class M4Row:
    """One measured Cortex-M4 figure against our 32-bit prediction."""

    model: str
    kernels: str
    used: int
    pred_used: int
    min_arena: int | None
    pred_min: int
    peak: str

    @property
    def err(self) -> float:
        return self.pred_used / self.used - 1

    @property
    def ok(self) -> bool:
        """Reported size within 1 % (6 % on the all-FC AD model, see the table note); the
        smallest arena never under-predicted and within 5 %."""
        tol = 0.06 if self.model == "ad01_int8" else 0.01
        fits = self.min_arena is None or self.min_arena <= self.pred_min <= 1.05 * self.min_arena
        return abs(self.err) <= tol and fits and self.pred_min >= self.used


def cortex_m4_rows() -> list[M4Row]:
    rows = []
    for f in json.loads(GROUND_TRUTH.read_text())["figures"]:
        p = tflm_arena.predict(load_tflite(DATA / f"{f['model']}.tflite"), 4, f["kernels"])
        rows.append(M4Row(f["model"], f["kernels"], f["arena_used_bytes"], p.total,
                          f.get("min_arena"), p.min_arena, p.peak))
    return rows


def render_m4(rows: list[M4Row]) -> list[str]:
    prov = json.loads(GROUND_TRUTH.read_text())["provenance"]
    head = ("| model | kernels | measured arena_used_bytes | predicted | err | measured min "
            "arena | predicted min arena | err | set by | target |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        m = (f"{kib(r.min_arena)} | {kib(r.pred_min)} | {r.pred_min / r.min_arena - 1:+.2%}"
             if r.min_arena else f"— | {kib(r.pred_min)} | —")
        lines.append(f"| {r.model} | {r.kernels} | {kib(r.used)} | {kib(r.pred_used)} | "
                     f"{r.err:+.2%} | {m} | {r.peak} | {'met' if r.ok else 'MISSED'} |")
    return [
        "",
        "## 32-bit Cortex-M4 TFLM build (ground truth)",
        "",
        f"Measured: TFLM {prov['tflm']}; CMSIS-NN {prov['cmsis_nn']}; {prov['machine']}; "
        f"{prov['method']} (`benchmarks/memory/tflm_cortex_m4.json`). Predicted: "
        "`tflm_arena.predict(graph, pointer_bytes=4, kernels=...)`, the figures "
        "`check --target tflm` / `--target tflm-cmsis-nn` print (the min arena). *set by* "
        "is the allocation step that fails one 16-byte step below the predicted min arena. "
        "The all-FC AD model's tail is over-predicted by ~12 B per FC op (our 32-bit "
        "`OpDataFullyConnected`/options from the headers are larger than that build's); "
        "every min arena is at or above the measured one, so an arena sized from the "
        "prediction allocates.",
        "",
        *lines,
    ]


def mobilenet_models() -> list[tuple[str, Path]]:
    """MobileNetV2-0.35 at 96² and 144², from the cache shared with benchmarks/patch."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "patch"))
    from patch_models import mobilenetv2_tflite

    return [(f"mobilenetv2_0.35_{s}", mobilenetv2_tflite(0.35, s)) for s in (96, 144)]


def demo_model(tmp: Path, console: Console) -> list[tuple[str, Path]]:
    """The demo CNN exported by ``tinymcu export`` on the built-in digits data."""
    from tinymcu.export.pipeline import export_model

    result = export_model("demo_cnn", "digits", tmp / "demo", console=console)
    return [("demo_cnn", result.tflite_path)]


def kib(n: int) -> str:
    return f"{n:,}"


def render_patch(rows: list[PatchRow]) -> list[str]:
    head = ("| model | split / grid | best | greedy_by_size | lower bound | best vs greedy | "
            "plan time (best) | emulated = TFLM (both) | targets |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r.name} | {r.split_grid} | {kib(r.best)} | {kib(r.greedy)} | "
                     f"{kib(r.bound)} | {r.best / r.greedy - 1:+.1%} | {r.plan_ms:.0f} ms | "
                     f"{'bit-exact' if r.exact else 'DIFFERS'} | {'met' if r.ok else 'MISSED'} |")
    return [
        "",
        "## Patch schedules",
        "",
        "On the layer schedules above, greedy-by-size over our in-place slots already "
        "reaches the bound on every model (column *greedy (ours)*): the saving against "
        "TFLM comes from in-place and from TFLM's tie order (demo_cnn). Patch schedules "
        "(MCUNetV2-style, the lowest-peak one `patch.search` finds) have hundreds of tile "
        "buffers with staggered lifetimes; there the search of `strategy=\"best\"` beats "
        "greedy-by-size. Both plans are emulated (junk-filled arena, high-water mark = "
        "arena) and compared with TFLM.",
        "",
        *lines,
    ]


def render(rows: list[Row], skipped: list[str], patch_rows: list[PatchRow],
           m4_rows: list[M4Row]) -> str:
    head = ("| model | TFLM head | TFLM state | TFLM total | TFLM min arena | tflm pred (x86-64) | "
            "err | pred min | err | tflm pred min (Cortex-M) | tinymcu arena | lower bound | "
            "ratio | tinymcu arena (speed) | "
            "greedy (ours) | TFLM liveness bound | ours vs TFLM head | emulator high water | "
            "emulated = TFLM | targets |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r.name} | {kib(r.tflm_head)} | {kib(r.tflm_state)} | {kib(r.tflm_total)} | "
            f"{kib(r.tflm_min)} | {kib(r.pred_total)} | {r.pred_err:+.2%} | {kib(r.pred_min)} | "
            f"{r.min_err:+.2%} | {kib(r.pred_m4)} | {kib(r.ours)} | {kib(r.bound)} | "
            f"{r.ratio:.3f} | {kib(r.ours_speed)} | {kib(r.ours_greedy)} | {kib(r.tflm_bound)} | "
            f"{1 - r.ours / (r.tflm_head + r.tflm_state):+.1%} | {kib(r.high_water)} | "
            f"{'bit-exact' if r.exact else 'DIFFERS'} | {'met' if r.ok else 'MISSED'} |")
    worst = max(abs(r.pred_err) for r in rows)
    worst_min = max(abs(r.min_err) for r in rows)
    text = [
        "# Memory: tinymcu planner and TFLM arena prediction vs tflite-micro",
        "",
        "Bytes. TFLM columns are measured with the tflite-micro Python interpreter (x86-64 "
        "wheel, reference kernels, recording allocator): *head* = planned non-persistent "
        "tensors, *state* = the variable tensors (SVDF/LSTM state) TFLM keeps in its tail, "
        "*total* = head + persistent tail as `print_allocations()` reports, "
        "*min arena* = the smallest arena (16-byte steps) with which it loads and invokes "
        "(bisection, one child process per probe). *tflm pred* is `tinymcu.mcu_runtime."
        "tflm_arena.predict` for the same 64-bit build (*err* against the measured total, "
        "*pred min* against the min arena) and the smallest arena for a 32-bit Cortex-M "
        "build (checked against a real Cortex-M4 build below). *tinymcu arena* is our "
        "planner (`strategy=\"best\"`, in-place, 4-byte "
        "alignment, kernel scratch included, state included: it lives in the arena for the "
        "whole run) with the direct kernels (`--optimize memory`, like for like with TFLM's "
        "reference kernels; *tinymcu arena (speed)* adds the fast kernels' im2col and "
        "padded-plane scratch, the default) on the graph our runtime executes: PAD ops "
        "folded into the VALID convs that read them (`passes.fold_pads`; TFLM columns use "
        "the graph as written); *lower bound* = max over steps of the bytes "
        "alive, in-place merges considered; *greedy (ours)* = TFLM's greedy-by-size "
        "placement over our in-place slots; *TFLM liveness bound* = the same bound for "
        "TFLM's own buffers (16-byte aligned, no in-place). *ours vs TFLM head* = memory "
        "saved against TFLM's head + state. The emulator runs each model inside an arena "
        "of exactly the tinymcu size, "
        "at the planned offsets, with every non-live byte overwritten by junk before each "
        "step, on a seeded random int8 input; *emulated = TFLM* compares its outputs with "
        "the TFLM interpreter's.",
        "",
        "Targets: tinymcu arena <= TFLM head + state and <= 1.05 x lower bound; "
        "|tflm pred err| <= 5%; "
        "emulation in that arena bit-exact with TFLM.",
        "",
        *lines,
        "",
        f"Worst |error| of the tflm total prediction: {worst:.2%}; of the min-arena "
        f"prediction: {worst_min:.2%}. All targets met: "
        f"{'yes' if all(r.ok for r in rows) else 'NO'}.",
        f"Planning time (best strategy): up to {max(r.plan_ms for r in rows):.0f} ms per model.",
    ]
    text += render_m4(m4_rows)
    text += render_patch(patch_rows)
    if skipped:
        text += ["", "Not measured: " + "; ".join(skipped)]
    return "\n".join(text) + "\n"


def main() -> int:
    console = Console(width=160)
    models = [(n, DATA / f"{n}.tflite") for n in MLPERF + TFLM_EXAMPLES]
    models += [(p.stem, p) for p in sorted(REALWORLD.glob("*.tflite"))]
    skipped: list[str] = []
    with console.status("building MobileNetV2 models (cached after the first run)"):
        models += mobilenet_models()
    with tempfile.TemporaryDirectory(prefix="tinymcu_membench_") as tmp:
        try:
            models += demo_model(Path(tmp), console)
        except Exception as e:  # the table is still worth having without the demo row
            skipped.append(f"demo_cnn (export failed: {type(e).__name__}: {e})")
        rows = []
        for name, path in models:
            with console.status(f"measuring {name}"):
                rows.append(measure(name, path))
        patch_rows = []
        for name, path in models:
            if name in ("vww_96_int8", "person_detect") or name.startswith("mobilenetv2"):
                with console.status(f"patch schedule of {name}"):
                    patch_rows.append(measure_patch(name, path))
    table = Table(title="Memory (bytes): TFLM measured vs tinymcu")
    for col in ("model", "TFLM head", "TFLM total", "TFLM min", "pred", "err", "pred min",
                "pred M4", "tinymcu", "bound", "ratio", "exact", "targets"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r.name, kib(r.tflm_head), kib(r.tflm_total), kib(r.tflm_min),
                      kib(r.pred_total), f"{r.pred_err:+.2%}", kib(r.pred_min), kib(r.pred_m4),
                      kib(r.ours), kib(r.bound), f"{r.ratio:.3f}", "yes" if r.exact else "NO",
                      "met" if r.ok else "MISSED")
    console.print(table)
    ptable = Table(title="Patch schedules: best vs TFLM's greedy-by-size (bytes)")
    for col in ("model", "split / grid", "best", "greedy", "bound", "exact", "targets"):
        ptable.add_column(col, justify="left" if col == "model" else "right")
    for r in patch_rows:
        ptable.add_row(r.name, r.split_grid, kib(r.best), kib(r.greedy), kib(r.bound),
                       "yes" if r.exact else "NO", "met" if r.ok else "MISSED")
    console.print(ptable)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = RESULTS.with_suffix(".md.tmp")
    m4_rows = cortex_m4_rows()
    for r in m4_rows:
        console.print(f"Cortex-M4 {r.model} ({r.kernels}): measured {kib(r.used)}, predicted "
                      f"{kib(r.pred_used)} ({r.err:+.2%}); min arena {kib(r.pred_min)}"
                      + (f" vs {kib(r.min_arena)} measured" if r.min_arena else ""))
    tmp_out.write_text(render(rows, skipped, patch_rows, m4_rows))
    tmp_out.replace(RESULTS)
    console.print(f"wrote {RESULTS}")
    return 0 if all(r.ok for r in [*rows, *patch_rows, *m4_rows]) else 1


if __name__ == "__main__":
    sys.exit(main())
