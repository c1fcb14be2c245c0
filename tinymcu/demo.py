"""The main job, end to end on built-in data: the whole tinymcu story in one call.

digits → FedTiny federated pruning on Flower (simulated clients) → export to int8 TFLite and
C arrays → memory check per layer and patch-based → emulation of the test split inside the
planned arena, compared bit for bit with the TFLM interpreter → one summary. Everything is
written below ``out`` atomically (a failed run leaves no half-written directory).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tinymcu.boards import get_board
from tinymcu.outputs import atomic_dir


@dataclass
class DemoConfig:
    out: Path = Path("demo_out")
    clients: int = 10
    rounds: int = 15
    density: float = 0.1
    alpha: float = 0.5
    seed: int = 0
    board: str = "qemu-mps2-an386"
    method: str = "fedtiny"


def _prune(cfg: DemoConfig, out: Path, console: Console) -> dict[str, Any]:
    from tinymcu.prune.config import PruneConfig
    from tinymcu.prune.run import run_pruning

    def on_round(rec: dict[str, Any]) -> None:
        console.print(f"  round {rec['round']:>3}: test accuracy {rec['test_acc']:.3f}  "
                      f"loss {rec['test_loss']:.3f}  density {rec['density']:.3f}")

    result = run_pruning(PruneConfig(model="demo_cnn", data="digits", clients=cfg.clients,
                                     alpha=cfg.alpha, rounds=cfg.rounds, density=cfg.density,
                                     method=cfg.method, out=str(out), seed=cfg.seed),
                         on_round=on_round)
    return {"report": result.report, "model": json.loads(result.model_json.read_text())}


def _emulate_test_split(tflite: Path, x: np.ndarray, y: np.ndarray, schedules: list[str],
                        sram: int) -> dict[str, Any]:
    """Emulate every test sample under each schedule; compare with TFLM bit for bit."""
    from tinymcu.export.parity import quantize_input
    from tinymcu.mcu_runtime.emulator import emulate
    from tinymcu.mcu_runtime.ops.base import quant_of
    from tinymcu.mcu_runtime.oracle import tflm_invoke_batch
    from tinymcu.mcu_runtime.pipeline import candidate_schedules, load_graph
    from tinymcu.mcu_runtime.planner import plan

    # planned as the sparse firmware the demo builds
    _, graph = load_graph(tflite, target="tinymcu", sparse=True)
    quant = quant_of(graph, graph.inputs[0])
    inputs = [quantize_input(x[i:i + 1], quant) for i in range(len(x))]
    tflm = [outs[0] for outs in tflm_invoke_batch(tflite, inputs)]
    result: dict[str, Any] = {"samples": len(x)}
    for kind in schedules:
        candidates, _ = candidate_schedules(graph, kind, sram)
        p = plan(graph, candidates[kind])
        outs = [emulate(graph, p, xs).outputs[0] for xs in inputs]
        result[kind] = {
            "arena_bytes": p.arena_bytes,
            "bit_exact": int(sum(np.array_equal(a, b) for a, b in zip(outs, tflm))),
            "accuracy": float(np.mean([int(np.argmax(o)) == int(t) for o, t in zip(outs, y)])),
        }
    return result


def _firmware(tflite: Path, x: np.ndarray, board: str, out: Path) -> dict[str, Any]:
    """Generate the C runtime (pruned filters stored sparse), build the board image and — on
    a board QEMU emulates — run it on the first test image; any disagreement with the planner
    or emulator raises (exit 3)."""
    from tinymcu.export.parity import quantize_input
    from tinymcu.firmware_templates.pipeline import make_firmware
    from tinymcu.firmware_templates.targets import get_target
    from tinymcu.mcu_runtime.ops.base import quant_of
    from tinymcu.mcu_runtime.pipeline import load_graph

    _, graph = load_graph(tflite, target="tinymcu")
    sample = quantize_input(x, quant_of(graph, graph.inputs[0]))[0]
    report = make_firmware(tflite, board, out, schedule="patch", sparse=True, data=sample,
                           run=get_target(board).runnable)
    report.verify()
    (out / "firmware.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    d = report.to_dict()
    return {k: d.get(k) for k in ("board", "schedule", "planner_arena_bytes", "map_arena_bytes",
                                  "sram_bytes", "flash_bytes", "systick_ticks", "bit_exact")}


def quiet_third_party_logs() -> None:
    """Keep the demo's terminal readable: TensorFlow's C++ banner, Flower's per-round INFO
    lines and torch/Ray deprecation notices say nothing about the user's model."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from flwr.supercore.logger import FLOWER_LOGGER
    except ImportError:
        return
    FLOWER_LOGGER.setLevel(logging.ERROR)


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    """Run the pipeline into ``cfg.out`` and return the summary (also saved as summary.json)."""
    quiet_third_party_logs()
    from tinymcu.export.data import digits_split
    from tinymcu.export.pipeline import export_model
    from tinymcu.mcu_runtime.check import Budget, check_model
    from tinymcu.mcu_runtime.report import to_json, to_markdown, write_plot

    console = console or Console()
    board = get_board(cfg.board)
    budget = Budget(board.sram_bytes, board.flash_bytes, board.name)
    with atomic_dir(cfg.out) as tmp:
        console.rule(f"1/5 federated pruning ({cfg.method}, {cfg.clients} clients, "
                     f"{cfg.rounds} rounds, density {cfg.density})")
        pruned = _prune(cfg, tmp / "prune", console)
        console.rule("2/5 export: torch → ONNX → int8 TFLite → C arrays")
        quiet_third_party_logs()  # Flower and Ray reset the warning filters on start-up
        model = pruned["model"]
        exported = export_model(str(tmp / "prune" / model["torchscript"]), "digits",
                                tmp / "export", name="demo_cnn", console=console)
        console.rule("3/5 check: will it fit?")
        checks = {}
        for kind in ("layer", "patch"):
            report = check_model(exported.tflite_path, budget, schedule=kind, sparse=True)
            checks[kind] = report
        (tmp / "check.json").write_text(to_json(checks["patch"]))
        (tmp / "check.md").write_text(to_markdown(checks["patch"]))
        write_plot(checks["patch"], tmp / "check.svg")
        console.rule("4/5 emulate the test split in the planned arena, compare with TFLM")
        _, _, x_test, y_test = digits_split(seed=cfg.seed)
        emu = _emulate_test_split(exported.tflite_path, x_test, y_test, ["layer", "patch"],
                                  budget.sram_bytes)
        console.rule(f"5/5 firmware: C99 runtime on {board.name}, patch schedule, sparse filters")
        fw = _firmware(exported.tflite_path, x_test[:1], board.name, tmp / "firmware")
        rep = exported.report
        summary = {
            "schema_version": 1,
            "out": str(cfg.out),
            "float_accuracy": pruned["report"]["final_accuracy"],
            "int8_accuracy": emu["layer"]["accuracy"],
            "density": pruned["report"]["density"],
            "client_to_server_bytes": pruned["report"]["client_to_server_bytes"],
            "flash_dense_bytes": checks["layer"].model.weights_bytes,
            "flash_sparse_bytes": checks["layer"].model.weights_sparse_bytes,
            "tflite_bytes": rep["tflite_bytes"],
            "sram_layer_bytes": checks["layer"].chosen.arena_bytes,
            "sram_patch_bytes": checks["patch"].chosen.arena_bytes,
            "sram_budget_bytes": budget.sram_bytes,
            "tflm_arena_bytes": rep["tflm"]["min_arena_bytes"],
            "emulation": emu,
            "firmware": fw,
            "fits": checks["layer"].fits,
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, console)
    return summary


def _print_summary(s: dict[str, Any], console: Console) -> None:
    e = s["emulation"]
    t = Table(title="tinymcu demo: digits, FedTiny → int8 → 256 KB MCU")
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_row("accuracy float (pruned, federated)", f"{100 * s['float_accuracy']:.1f}%")
    t.add_row("accuracy int8 (emulator)", f"{100 * s['int8_accuracy']:.1f}%")
    t.add_row("weight density", f"{100 * s['density']:.1f}%")
    t.add_row("weights flash dense / sparse",
              f"{s['flash_dense_bytes']:,} B / {s['flash_sparse_bytes']:,} B")
    t.add_row(".tflite (TFLM flash)", f"{s['tflite_bytes']:,} B")
    t.add_row("SRAM per layer / patch vs budget",
              f"{s['sram_layer_bytes']:,} / {s['sram_patch_bytes']:,} / "
              f"{s['sram_budget_bytes']:,} B")
    t.add_row("TFLM arena (smallest that runs)", f"{s['tflm_arena_bytes']:,} B")
    for kind in ("layer", "patch"):
        t.add_row(f"emulator == TFLM ({kind} schedule)",
                  f"{e[kind]['bit_exact']}/{e['samples']} bit-exact")
    fw = s["firmware"]
    t.add_row(f"firmware arena planner / map ({fw['board']})",
              f"{fw['planner_arena_bytes']:,} / {fw['map_arena_bytes']:,} B")
    t.add_row("firmware SRAM / flash (linker map)",
              f"{fw['sram_bytes']:,} / {fw['flash_bytes']:,} B")
    if fw["bit_exact"] is not None:
        t.add_row("QEMU Cortex-M4 output == emulator", "bit-exact" if fw["bit_exact"] else "NO")
    t.add_row("client → server traffic", f"{s['client_to_server_bytes']:,} B")
    console.print(t)
    console.print(f"outputs in {s['out']}/: prune/ export/ (model .tflite, C arrays, reports) "
                  "firmware/ (app.elf, map, project) check.json check.md check.svg summary.json")
