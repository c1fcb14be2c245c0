"""The routes benchmark (issue 12): every model kind of ``models.py`` through each converter.

Each cell is a real ``export_model`` call (conversion, our reader + planner, BUILTIN_REF
parity, TFLM bit-exact and smallest-arena checks). On top of the export's own checks this
runs our emulator on the same int8 inputs and compares it with TFLM bit for bit, and asks
``tinymcu check``'s planner to accept the file. Data: seeded standard-normal samples,
CALIB for calibration, EVAL for agreement and the bit-exact comparisons.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROUTES = ("mcu", "litert", "auto")
#: the conversions actually run; auto's row is derived from them (see run_routes)
RUN_ROUTES = ("mcu", "litert")
CALIB = 32
EVAL = 128
TARGET_AUTO, TARGET_MCU = 11, 9


def _emulator_vs_tflm(tflite: Path, inputs: list[np.ndarray]) -> tuple[bool, int]:
    """Our emulator (planned arena, layer schedule) against TFLM on every input."""
    from tinymcu.mcu_runtime import oracle
    from tinymcu.mcu_runtime.check import load_graph
    from tinymcu.mcu_runtime.emulator import emulate
    from tinymcu.mcu_runtime.planner import plan
    from tinymcu.mcu_runtime.schedule import layer_schedule

    _, graph = load_graph(tflite)
    p = plan(graph, layer_schedule(graph))
    tflm = oracle.tflm_invoke_batch(tflite, [[x] for x in inputs])
    bad = 0
    for x, ref in zip(inputs, tflm):
        out = emulate(graph, p, [x]).outputs[0]
        bad += int(not np.array_equal(out.reshape(-1), ref[0].reshape(-1)))
    return bad == 0, bad


def _check_accepts(tflite: Path) -> bool:
    from tinymcu.errors import TinymcuError
    from tinymcu.mcu_runtime.check import Budget, check_model

    try:
        check_model(tflite, Budget(1 << 40, 1 << 40))
        return True
    except TinymcuError:
        return False


def _full_int8(tflite: Path) -> bool:
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    g = load_tflite(tflite)
    return all(t.dtype == "int8" for t in g.activations())


def _one(name: str, route: str, tmp: Path) -> dict[str, Any]:
    """One cell; any failure (a refusal, or a crash: a bug to report) becomes its row, so a
    single broken cell never stops the benchmark."""
    t = time.perf_counter()
    try:
        return _one_cell(name, route, tmp)
    except Exception as e:  # noqa: BLE001 - recorded in the table, not hidden
        return {"model": name, "route": route, "converted": False,
                "error": f"CRASH {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                "wall_s": time.perf_counter() - t}


def _one_cell(name: str, route: str, tmp: Path) -> dict[str, Any]:
    from models import INPUTS

    from tinymcu.errors import TinymcuError
    from tinymcu.export.parity import quantize_input
    from tinymcu.export.pipeline import export_model
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    shape = INPUTS[name]
    rng = np.random.default_rng(0)
    calib = tmp / f"{name}.npz"
    x = rng.standard_normal((EVAL, *shape[1:])).astype(np.float32)
    np.savez(calib, x=x)
    row: dict[str, Any] = {"model": name, "route": route}
    t = time.perf_counter()
    try:
        res = export_model(f"models:{name}", str(calib), tmp / f"{name}-{route}",
                           converter=route, tflm_samples=EVAL, console=_quiet_console())
    except TinymcuError as e:
        row.update(converted=False, error=str(e), wall_s=time.perf_counter() - t)
        return row
    r = res.report
    tm = r["timings_s"]
    conv_s = sum(tm.get(k, 0.0) for k in ("onnx", "tf_build", "quantize", "litert",
                                            "runtime_check"))
    graph = load_tflite(res.tflite_path)
    q = quantize_input(x, graph.tensors[graph.inputs[0]].quant)
    exact, bad = _emulator_vs_tflm(res.tflite_path, q)
    p = r["parity"]
    row.update(
        converted=True, used=r["route"]["used"], why=r["route"]["why"],
        full_int8=_full_int8(res.tflite_path), top1=p["top1_agreement"],
        rel_err=p["max_abs_error"] / max(p["float_max_abs"] or 1e-12, 1e-12),
        emu_tflm=exact, emu_bad=bad, tflm_ref=r["tflm"]["bit_exact"],
        check=_check_accepts(res.tflite_path), bytes=r["tflite_bytes"],
        pads=r["explicit_pads"], convert_s=conv_s, wall_s=time.perf_counter() - t,
        ops=len(graph.ops))
    return row


def _quiet_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, quiet=True)


def run_routes(only: list[str] | None = None) -> list[dict[str, Any]]:
    """mcu and litert run for real; ``auto`` is what `--converter auto` does with those two
    results: the mcu export when it succeeded, else the litert one (auto runs exactly these
    conversions in that order, with the same checks; ``test_export_routes`` runs the
    fallback itself). Deriving it halves the benchmark's CPU time on a shared 2-core box."""
    from models import MODELS

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            if only and name not in only:
                continue
            got = {}
            for route in RUN_ROUTES:
                got[route] = _one(name, route, Path(tmp))
                print(f"{name:24s} {route:7s} " + ("ok" if got[route]["converted"] else
                      "FAILED: " + got[route]["error"][:150]), flush=True)
            mcu, lit = got["mcu"], got["litert"]
            auto = dict(mcu, route="auto", why="auto: the mcu route converted every op") \
                if mcu["converted"] else dict(lit, route="auto")
            if not mcu["converted"] and lit["converted"]:
                auto["why"] = f"auto: mcu route unavailable ({mcu['error']})"
            rows += [mcu, lit, auto]
    return rows


def _good(r: dict[str, Any]) -> bool:
    """Full int8, accepted by our runtime, emulator == TFLM on every sample."""
    return bool(r["converted"] and r["full_int8"] and r["check"] and r["emu_tflm"])


def render_routes(rows: list[dict[str, Any]]) -> tuple[str, bool]:
    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.1f}%"

    head = ("| model | route | converted | full int8 | int8/float top-1 | rel. max err | "
            "emulator == TFLM | TFLM == REF | check accepts | .tflite B | PAD ops | "
            "convert s |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        if not r["converted"]:
            err = r["error"].replace("|", "\\|")
            lines.append(f"| {r['model']} | {r['route']} | no: {err[:160]} |  |  |  |  |  |  |"
                         "  |  |  |")
            continue
        used = r["route"] if r["route"] != "auto" else f"auto → {r['used']}"
        emu = "yes" if r["emu_tflm"] else f"NO ({r['emu_bad']}/{EVAL})"
        lines.append(
            f"| {r['model']} | {used} | yes | {'yes' if r['full_int8'] else 'NO'} | "
            f"{pct(r['top1'])} | {r['rel_err']:.3f} | "
            f"{emu} | "
            f"{'yes' if r['tflm_ref'] else 'no'} | {'yes' if r['check'] else 'NO'} | "
            f"{r['bytes']:,} | {r['pads']} | {r['convert_s']:.1f} |")
    by = {(r["model"], r["route"]): r for r in rows}
    models = list(dict.fromkeys(r["model"] for r in rows))
    n_auto = sum(_good(by[(m, "auto")]) for m in models)
    n_mcu = sum(_good(by[(m, "mcu")]) for m in models)
    n_lit = sum(_good(by[(m, "litert")]) for m in models)
    both = [m for m in models if _good(by[(m, "mcu")]) and _good(by[(m, "litert")])]
    size_ok = [m for m in both if by[(m, "mcu")]["bytes"] <= by[(m, "litert")]["bytes"]]
    pad_ok = [m for m in both if by[(m, "mcu")]["pads"] <= by[(m, "litert")]["pads"]]
    ok = n_auto >= TARGET_AUTO and n_mcu >= TARGET_MCU and len(size_ok) == len(both) \
        and len(pad_ok) == len(both)
    whys = [f"  - {m}: " + (by[(m, "auto")]["why"] if by[(m, "auto")]["converted"] else
                           f"neither route: mcu: {by[(m, 'mcu')]['error'][:300]}; "
                           f"litert: {by[(m, 'litert')]['error'][:200]}")
            for m in models
            if not by[(m, "auto")]["converted"] or by[(m, "auto")]["used"] != "mcu"]
    from tinymcu.export.route_check import runtime_ops

    text = "\n".join([
        f"{len(models)} model kinds (`benchmarks/export/models.py`, seeded random weights), "
        f"{CALIB}–{EVAL} seeded standard-normal calibration samples, {EVAL} evaluation samples "
        "per model (agreement, emulator == TFLM and TFLM == BUILTIN_REF all on those "
        "128 int8 inputs).", "",
        *lines, "",
        "- *good* = converted, every activation tensor int8 (no float op, int8 input and "
        "output), `tinymcu check`'s reader and planner accept it, and our emulator equals "
        "TFLM on every evaluation sample.",
        "- *rel. max err*: max |dequantized int8 − float| over max |float| on the evaluation "
        "set; *convert s*: conversion plus our runtime's post-check (not the parity/TFLM "
        "checks).",
        "- Why `auto` did not take the mcu route:", *(whys or ["  - (it took it everywhere)"]),
        f"- Runtime ops when this ran ({len(runtime_ops())}): "
        f"{', '.join(sorted(runtime_ops()))}. The mcu route's fail-fast check and both "
        "routes' post-check follow this set, so rows change as the runtime gains ops.", "",
        f"Targets: auto good on {n_auto}/{len(models)} (target ≥ {TARGET_AUTO}) — "
        f"{'met' if n_auto >= TARGET_AUTO else 'NOT met'}; mcu good on {n_mcu}/{len(models)} "
        f"(target ≥ {TARGET_MCU}) — {'met' if n_mcu >= TARGET_MCU else 'NOT met'}; litert "
        f"good on {n_lit}/{len(models)}; where both are good ({len(both)} models) mcu's "
        f".tflite is not larger on {len(size_ok)} and has no more PAD ops on {len(pad_ok)}.",
        ""])
    return text, ok
