"""Firmware benchmark: the generated C runtime linked for a Cortex-M4 and run under QEMU.

For each shared model and schedule this generates the C code, links it for the
``qemu-mps2-an386`` board (RAM 256 KiB, flash 1 MiB, enforced by the linker script) and
runs it under ``qemu-system-arm -icount shift=0``. Columns: the planner's arena; the arena
array's size in the linker map (must be equal); total SRAM from the map (.data + .bss with
the arena + the 8 KiB stack reservation); flash from the map (code + constants + .data
init); the stack the run used (painted stack); SysTick ticks around ``tinymcu_run()``
(25 MHz SysTick, 40 instructions per tick under -icount shift=0: deterministic, but QEMU
counts instructions, not the cycles of a real chip); whether the output equals our
emulator's for the same graph and plan, and TFLM's (the oracle, child process).

Run: ``python benchmarks/firmware/run.py`` (about a minute or two on 2 cores).
Writes ``benchmarks/results/firmware.md``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from tinymcu.errors import TinymcuError
from tinymcu.firmware_templates.pipeline import FirmwareReport, make_firmware

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "firmware.md"
BOARD = "qemu-mps2-an386"

MODELS = ["kws_ref_model", "vww_96_int8", "pretrainedResnet_quant", "ad01_int8",
          "str_ww_ref_model", "person_detect", "pretrainedResnet_large_int8"]
#: (schedule, fuse): op by op and patch-based, each plain and with expand+depthwise fused
SCHEDULES = [("layer", False), ("patch", False), ("layer", True), ("patch", True)]
INPUTS = {"kws_ref_model": DATA / "kws_sample_input_int8.npy"}

HEADER = ["model", "schedule", "planner arena", "map arena", "stack bound", "stack used",
          "SRAM (map)", "weights (codegen)", "model.o .rodata (map)", "flash (map)",
          "SysTick ticks", "~instructions", "= emulator", "= TFLM", "build+run s"]


def _input(name: str) -> np.ndarray | None:
    return np.load(INPUTS[name]) if name in INPUTS else None


def _tflm(path: Path, x: np.ndarray) -> np.ndarray | None:
    try:
        from tinymcu.mcu_runtime.oracle import tflm_invoke
    except ImportError:
        return None
    return tflm_invoke(str(path), [x])[0]


def _row(name: str, r: FirmwareReport, tflm: np.ndarray | None, secs: float) -> list[str]:
    fw, q = r.firmware, r.qemu
    assert q is not None
    tflm_ok = "n/a" if tflm is None else (
        "yes" if np.array_equal(q.output, tflm.reshape(-1)) else "NO")
    sched = f"{r.schedule} + fuse ({r.fused_ops})" if r.fused_ops else r.schedule
    return [name, sched, f"{r.planner_arena_bytes:,}", f"{fw.arena_symbol_bytes:,}",
            f"{fw.stack_bound:,}", f"{q.stack_used:,}", f"{fw.sram_bytes:,}",
            f"{r.codegen_const_bytes:,}", f"{fw.model_rodata_bytes:,}", f"{fw.flash_bytes:,}",
            f"{q.ticks:,}", f"{q.instructions:,}", "yes" if r.bit_exact else "NO", tflm_ok,
            f"{secs:.1f}"]


def main() -> int:
    rows: list[list[str]] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tinymcu-fw-bench-") as tmp:
        for name in MODELS:
            path = DATA / f"{name}.tflite"
            tflm = None
            for sched, fuse in SCHEDULES:
                t0 = time.perf_counter()
                label = f"{sched}{' + fuse' if fuse else ''}"
                try:
                    r = make_firmware(path, BOARD, Path(tmp) / f"{name}-{sched}-{fuse}",
                                      schedule=sched, fuse=fuse, data=_input(name), run=True)
                    r.verify()
                except TinymcuError as e:
                    failures.append(f"{name} {label}: {e}")
                    continue
                secs = time.perf_counter() - t0
                if r.schedule != sched or fuse != bool(r.fused_ops):
                    continue  # no patch schedule / nothing to fuse: an earlier row has it
                if tflm is None:
                    tflm = _tflm(path, r.input)
                rows.append(_row(name, r, tflm, secs))
    table = Table(title=f"firmware on {BOARD} (QEMU, -icount shift=0)")
    for h in HEADER:
        table.add_column(h, justify="left" if h in ("model", "schedule") else "right")
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    RESULTS.write_text(_markdown(rows, failures))
    for f in failures:
        print(f"FAILED: {f}", file=sys.stderr)
    return 1 if failures or any("NO" in row for row in rows) else 0


def _markdown(rows: list[list[str]], failures: list[str]) -> str:
    lines = [
        f"# Firmware: generated C runtime on {BOARD} under QEMU",
        "",
        "Bytes, all measured from the linker map of the linked image (`app.map`) except the "
        "planner and codegen columns. *map arena* is the size of the arena array's input "
        "section (`.bss.<arena>` of `model.o`); it must equal the planner's arena. *stack "
        "bound* is the worst-case stack depth from GCC's call graph (`-fcallgraph-info=su`: "
        "deepest path from Reset_Handler + one SysTick exception), which is what the linker "
        "script reserves (8-byte aligned); *stack used* is the painted-stack high-water mark "
        "of the run (must be <= the bound). *SRAM* = .data + .bss (arena included) + the "
        "stack reservation, all inside the linker script's `RAM LENGTH = 256K`. *weights* = "
        "the const arrays the code generator reports, next to `model.o`'s .rodata in the map "
        "(the arrays plus the per-op parameter structs). *flash* = vector table + code + "
        "constants (weights, the embedded test input) + .data initial values. *SysTick "
        "ticks* are counted around "
        "`tinymcu_run()` under `-icount shift=0` (deterministic; 25 MHz SysTick = 40 "
        "instructions per tick); QEMU models instructions, not a real chip's cycles. "
        "*= emulator*: QEMU output bytes equal `emulate()` on the same graph and plan; "
        "*= TFLM*: equal to the tflite-micro interpreter. Inputs: the real KWS sample, "
        "seeded random int8 elsewhere. Schedule *patch* is the lowest-peak patch schedule "
        "within 15% extra MACs (`tinymcu check --schedule patch`); *+ fuse (n)*: n stride-2 "
        "1x1-expand + depthwise pairs run fused (`--fuse`); rows are listed only where "
        "a patch schedule or a fusion applies.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
    ]
    if failures:
        lines += ["Failures:", "", *(f"- {f}" for f in failures), ""]
    exact = not failures and all("NO" not in r for r in rows)
    lines.append(f"Regenerate: `python benchmarks/firmware/run.py`. "
                 f"All bit-exact: {'yes' if exact else 'no'}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
