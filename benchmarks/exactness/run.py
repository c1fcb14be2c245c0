"""Exactness sweep: every shared model × many seeded inputs, emulator vs TFLM and C vs emulator.

For every ``.tflite`` under the models folder (all sub-folders) that our reader accepts:

* the emulator runs each input in its planned arena (layer schedule, as ``tinymcu emulate``);
* TFLM (the tflite_micro interpreter, reference kernels) runs the same inputs in one child
  process per chunk, with the arena sized from our own prediction (``execute.verify_arena_bytes``);
* the generated C (``tinymcu codegen``, host gcc build with the test-suite harness that
  junk-fills the arena first) runs all inputs back to back in one process, where the C
  runtime takes the model (it names the reason where it does not);
* a stateful model (variable tensors: SVDF, LSTM) runs all its inputs as one sequence from
  a reset state on all three sides, so the state carried between invocations is compared too.

Inputs: ``N`` seeded random inputs per model (full int8/uint8 range; float inputs are drawn
on the grid of the QUANTIZE that reads them) plus the real samples the shared folders and
tests/data hold for a model. A mismatching input is one where any output element differs;
max |Δ| is in output units (LSB for integer outputs). Models the reader rejects are listed
with the reason.

Run: ``python benchmarks/exactness/run.py`` (1,000 inputs per model, writes
``benchmarks/results/exactness.md``); ``--quick`` runs 50 per model (the test suite runs it);
``--models DIR`` / ``--out FILE`` / ``--inputs N`` / ``--only NAME`` override;
``--merge A.md B.md`` combines runs made on disjoint ``--only`` sets (one per core).
Exit status 1 when any accepted model mismatches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from tinymcu.errors import TinymcuError  # noqa: E402
from tinymcu.mcu_runtime import oracle  # noqa: E402
from tinymcu.mcu_runtime.check import load_graph  # noqa: E402
from tinymcu.mcu_runtime.emulator import emulate, emulate_sequence  # noqa: E402
from tinymcu.mcu_runtime.execute import verify_arena_bytes  # noqa: E402
from tinymcu.mcu_runtime.ir import Graph  # noqa: E402
from tinymcu.mcu_runtime.patch import schedule_macs  # noqa: E402
from tinymcu.mcu_runtime.planner import plan  # noqa: E402
from tinymcu.mcu_runtime.schedule import layer_schedule  # noqa: E402

DEFAULT_MODELS = ROOT.parent / "shared" / "models"
RESULTS = ROOT / "benchmarks" / "results" / "exactness.md"
TFLM_CHUNK = 200


@dataclass
class Result:
    """One model's sweep. ``c_note`` says why the C side did not run (else empty)."""

    model: str
    inputs: int
    samples: int
    emu_bad: int
    emu_max: float
    c_inputs: int
    c_bad: int
    c_max: float
    c_note: str
    note: str
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.note and self.emu_bad == 0 and self.c_bad == 0


def random_inputs(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    grids = {}
    for op in graph.ops:  # a float input is quantized by the QUANTIZE that reads it
        if op.kind == "QUANTIZE" and op.inputs[0] in graph.inputs:
            q = graph.tensors[op.outputs[0]].quant
            grids[op.inputs[0]] = (float(q.scale.ravel()[0]), int(q.zero_point.ravel()[0]),
                                   graph.tensors[op.outputs[0]].dtype)
    sets = []
    for _ in range(n):
        xs = []
        for t in graph.inputs:
            tensor = graph.tensors[t]
            if tensor.dtype in ("int8", "uint8"):
                info = np.iinfo(tensor.dtype)
                xs.append(rng.integers(info.min, info.max + 1, tensor.shape).astype(tensor.dtype))
            elif t in grids:
                scale, zp, qtype = grids[t]
                info = np.iinfo(qtype)
                q = rng.integers(info.min, info.max + 1, tensor.shape)
                xs.append(((q - zp) * scale).astype(tensor.dtype))
            else:
                xs.append(rng.normal(0, 1, tensor.shape).astype(tensor.dtype))
        sets.append(xs)
    return sets


def real_samples(path: Path, graph: Graph) -> list[list[np.ndarray]]:
    """The real inputs we hold for a model: tests/data's (KWS, person, streaming WW) and
    the MLPerf AD spectrogram windows from the shared samples folder."""
    from test_emulator import real_samples as test_samples

    sets = [[x] for x in test_samples(path.stem, graph)]
    sww = path.parent / "samples" / "sww_calibration_samples.npz"
    if path.stem == "str_ww_ref_model" and sww.exists():  # every calibration spectrogram
        q = graph.tensors[graph.inputs[0]].quant
        specs = np.load(sww)["specs"]
        x = np.clip(np.round(specs / float(q.scale[0])) + int(q.zero_point[0]), -128, 127)
        sets = [[s[None]] for s in x.astype(np.int8)]
    hist = path.parent / "samples" / "ad_normal_id_01_00000000_hist_librosa.bin"
    t = graph.tensors[graph.inputs[0]]
    if path.stem == "ad01_int8" and hist.exists() and t.quant is not None:
        frames = np.fromfile(hist, dtype=np.float32).reshape(-1, 128)
        q = np.round(frames / float(t.quant.scale[0])) + int(t.quant.zero_point[0])
        q = np.clip(q, -128, 127).astype(np.int8)
        sets += [[q[i:i + 5].reshape(t.shape)] for i in range(len(q) - 4)]
    return sets


def _max_delta(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64).reshape(a.shape)).max())


def _compare(ours: list[list[np.ndarray]], ref: list[list[np.ndarray]]) -> tuple[int, float]:
    bad, worst = 0, 0.0
    for xs, ys in zip(ours, ref, strict=True):
        d = max(_max_delta(a, b) for a, b in zip(xs, ys, strict=True))
        bad += d > 0
        worst = max(worst, d)
    return bad, worst


def _run_c(graph: Graph, path: Path, sets: list[list[np.ndarray]], work: Path
           ) -> tuple[list[list[np.ndarray]] | None, str]:
    """Generate, build and run the C model on every input set (one process)."""
    import subprocess

    from test_codegen import CC, build

    from tinymcu.mcu_runtime.codegen import codegen_model

    if CC is None:
        return None, "no host C compiler"
    try:
        r = codegen_model(path, work / "c")
    except TinymcuError as e:
        return None, str(e)
    exe = build(r.files[0].parent)
    src, dst = work / "inputs.bin", work / "outputs.bin"
    # every input of a record back to back, as tinymcu_invoke takes them; outputs likewise
    src.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for s in sets for x in s))
    proc = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, timeout=1800)
    if proc.returncode != 0:
        return None, f"C run exited {proc.returncode}"
    outs = [r.graph.tensors[t] for t in r.graph.outputs]
    raw, per = dst.read_bytes(), sum(t.nbytes for t in outs)
    if len(raw) != per * len(sets):
        return None, f"C wrote {len(raw)} bytes for {len(sets)} records of {per}"
    results = []
    for k in range(len(sets)):
        off, ys = k * per, []
        for t in outs:
            ys.append(np.frombuffer(raw[off:off + t.nbytes], dtype=t.dtype).reshape(t.shape))
            off += t.nbytes
        results.append(ys)
    return results, ""


def sweep_model(path: Path, graph: Graph, n: int, seed: int) -> Result:
    """TFLM runs in a child (one per chunk) on a worker thread while the emulator runs here,
    so the two use both cores."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.time()
    sets = random_inputs(graph, n, seed)
    samples = real_samples(path, graph)
    sets += samples
    arena = verify_arena_bytes(path)
    # A stateful model (SVDF, LSTM) runs all inputs as one sequence on every side: the C
    # harness invokes back to back without a reset, so the state carries there too.
    stateful = bool(graph.variables())
    with ThreadPoolExecutor(1) as pool:
        if stateful:
            chunks = [pool.submit(oracle.tflm_invoke_sequence, path, sets, arena)]
        else:
            chunks = [pool.submit(oracle.tflm_invoke_batch, path, sets[i:i + TFLM_CHUNK], arena)
                      for i in range(0, len(sets), TFLM_CHUNK)]
        p = plan(graph, layer_schedule(graph))
        if stateful:
            ours = [r.outputs for r in emulate_sequence(graph, p, sets)]
        else:
            ours = [emulate(graph, p, xs, seed=k).outputs for k, xs in enumerate(sets)]
        note, emu_bad, emu_max = "", 0, 0.0
        try:
            ref = [o for c in chunks for o in c.result()]
            emu_bad, emu_max = _compare(ours, ref)
        except oracle.OracleError as e:
            note = f"TFLM could not run it: {e}"
    with tempfile.TemporaryDirectory(prefix="tinymcu_exact_") as tmp:
        c_out, c_note = _run_c(graph, path, sets, Path(tmp))
    c_bad, c_max = _compare(c_out, ours) if c_out is not None else (0, 0.0)
    return Result(path.stem, len(sets), len(samples), emu_bad, emu_max,
                  len(c_out) if c_out else 0, c_bad, c_max, c_note, note, time.time() - t0)


def _fmt(x: float) -> str:
    return f"{x:g}"


def render(results: list[Result], rejected: list[tuple[str, str]], n: int, seed: int,
           models_dir: Path, pending: list[str] | None = None) -> str:
    lines = ["# Exactness sweep: emulator vs TFLM, generated C vs emulator", "",
             f"Written by `benchmarks/exactness/run.py` ({n} seeded random inputs per model, "
             f"seed {seed}, plus real samples; models from `{models_dir.name}/` and its "
             f"sub-folders). TFLM is the tflite_micro interpreter (reference kernels, x86-64 "
             f"wheel); the C is the generated model built with the host gcc. A mismatching "
             f"input has at least one differing output element; max |Δ| is in output units "
             f"(LSB for integer outputs).", "",
             "| model | inputs (real) | emulator≠TFLM | max Δ | C inputs | C≠emulator | max Δ "
             "| note | s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        c_note = r.c_note.replace("|", "/")
        lines.append(f"| {r.model} | {r.inputs} ({r.samples}) | "
                     f"{'—' if r.note else r.emu_bad} | {'—' if r.note else _fmt(r.emu_max)} | "
                     f"{r.c_inputs or '—'} | {r.c_bad if r.c_inputs else '—'} | "
                     f"{_fmt(r.c_max) if r.c_inputs else '—'} | "
                     f"{(r.note + ' ' + ('C: ' + c_note if c_note else '')).strip()} | "
                     f"{r.seconds:.0f} |")
    exact = sum(r.ok for r in results)
    c_runs = sum(1 for r in results if r.c_inputs)
    lines += ["", f"Accepted {len(results)} of {len(results) + len(rejected)} models; "
              f"{exact} with 0 mismatching inputs on every side that ran; the C runtime "
              f"ran {c_runs}.", "", "## Rejected by the reader", "",
              "| model | reason |", "|---|---|"]
    lines += [f"| {m} | {why.replace('|', '/')} |" for m, why in rejected]
    if pending:
        lines += ["", f"## Not swept yet ({len(pending)}: the run was still going when this "
                  f"file was written)", "", *[f"- {m}" for m in pending]]
    return "\n".join(lines) + "\n"


def parse_results(text: str) -> tuple[list[Result], list[tuple[str, str]], list[str]]:
    """The swept, rejected and not-yet-swept models of a results file this script wrote
    (for ``--merge``: several runs on disjoint ``--only`` sets, e.g. one per core)."""
    results, rejected, pending, section = [], [], [], "swept"
    for line in text.splitlines():
        if line.startswith("## Rejected"):
            section = "rejected"
        elif line.startswith("## Not swept"):
            section = "pending"
        elif line.startswith("## "):
            section = "other"
        if section == "pending" and line.startswith("- "):
            pending.append(line[2:].strip())
        if not line.startswith("| ") or line.startswith("| model |"):
            continue
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if section == "rejected" and len(cells) == 2:
            rejected.append((cells[0], cells[1]))
        elif section == "swept" and len(cells) == 9:
            inputs, samples = cells[1].split(" (")
            note, _, c_note = cells[7].partition("C: ")
            dash = cells[2] == "—"
            c_ran = cells[4] != "—"
            results.append(Result(cells[0], int(inputs), int(samples.rstrip(")")),
                                  0 if dash else int(cells[2]), 0.0 if dash else float(cells[3]),
                                  int(cells[4]) if c_ran else 0, int(cells[5]) if c_ran else 0,
                                  float(cells[6]) if c_ran else 0.0, c_note.strip(),
                                  note.strip(), float(cells[8])))
    return results, rejected, pending


def merge(files: list[Path], out: Path, n: int, seed: int, models_dir: Path) -> int:
    """One table from several runs' files; a model swept in several keeps its largest run."""
    best: dict[str, Result] = {}
    rejected: dict[str, str] = {}
    pending: set[str] = set()
    for f in files:
        results, rej, todo = parse_results(f.read_text())
        for r in results:
            if r.model not in best or r.inputs > best[r.model].inputs:
                best[r.model] = r
        rejected.update(rej)
        pending.update(todo)
    results = sorted(best.values(), key=lambda r: r.seconds)
    # a later run that swept a model an older run rejected (a new op) supersedes the rejection
    rejected = {m: why for m, why in rejected.items() if m not in best}
    left = sorted(pending - set(best))
    write(out, render(results, sorted(rejected.items()), n, seed, models_dir, left or None))
    print(f"wrote {out} ({len(results)} swept, {len(rejected)} rejected)")
    return 0 if all(r.ok for r in results) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="50 inputs per model")
    ap.add_argument("--inputs", type=int, help="random inputs per model (default 1000)")
    ap.add_argument("--models", type=Path, default=DEFAULT_MODELS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--only", action="append", help="model stem(s) to run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", type=Path, nargs="+",
                    help="combine the result files of runs on disjoint --only sets into --out")
    args = ap.parse_args(argv)
    n = args.inputs or (50 if args.quick else 1000)
    if args.merge:
        return merge(args.merge, args.out, n, args.seed, args.models)
    paths = sorted(args.models.rglob("*.tflite"), key=lambda p: (p.parent.name, p.name))
    if args.only:
        paths = [p for p in paths if p.stem in args.only]
    if not paths:
        print(f"no .tflite under {args.models}", file=sys.stderr)
        return 2
    results, rejected, graphs = [], [], []
    for path in paths:
        name = f"{path.parent.name}/{path.stem}"
        try:
            _, graph = load_graph(path)
        except TinymcuError as e:
            rejected.append((name, str(e).replace(f"{path}: ", "")))
            continue
        graphs.append((schedule_macs(graph, layer_schedule(graph)), name, path, graph))
    graphs.sort(key=lambda g: (g[0], g[1]))  # cheapest first: a cut-short run still says most
    for k, (_, name, path, graph) in enumerate(graphs):
        write(args.out, render(results, rejected, n, args.seed, args.models,
                               [g[1] for g in graphs[k:]]))
        r = sweep_model(path, graph, n, args.seed)
        r.model = name
        results.append(r)
        print(f"{name}: {r.inputs} inputs, emulator≠TFLM {r.emu_bad} (max {r.emu_max:g}), "
              f"C≠emulator {r.c_bad}/{r.c_inputs} (max {r.c_max:g}) {r.note} {r.c_note} "
              f"[{r.seconds:.0f} s]", flush=True)
    write(args.out, render(results, rejected, n, args.seed, args.models))
    print(f"wrote {args.out}")
    return 0 if all(r.ok for r in results) else 1


def write(path: Path, text: str) -> None:
    """Atomic replace, so a reader never sees half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
