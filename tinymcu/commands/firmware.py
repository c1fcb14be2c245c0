"""`tinymcu firmware`: generate C for a model, build a board's firmware image, run it on QEMU."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from ..boards import DEFAULT_BOARD, parse_size
from ..errors import TinymcuError
from ..outputs import write_atomic
from .arrays import load_inputs


def _load_input(path: Path) -> np.ndarray:
    arrays = load_inputs(path)
    if len(arrays) != 1:
        raise TinymcuError(f"--input {path}: the firmware embeds one input; got {len(arrays)}")
    return arrays[0]


@click.command("firmware")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=DEFAULT_BOARD, show_default=True,
              help="Board project: qemu-mps2-an386 (runs in QEMU), nucleo-f412zg, "
                   "nucleo-f411re, arduino-nano-33-ble, nucleo-f746zg, nucleo-h743zi.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for the project, app.elf, app.map and firmware.json.")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True)
@click.option("--fuse", is_flag=True,
              help="Fuse stride-2 1x1-expand + depthwise pairs (less SRAM, same outputs).")
@click.option("--sparse", is_flag=True,
              help="Store conv/depthwise/FC filters as a bitmask plus non-zero values (pruned "
                   "models need less flash; same outputs).")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="int8 .npy test input embedded in the image (default: seeded random).")
@click.option("--sram", help="Shrink the board's RAM region, e.g. 64KiB (the linker enforces it).")
@click.option("--run", is_flag=True,
              help="Run the image on QEMU and compare its output with the emulator bit for bit "
                   "(exit 3 on a mismatch).")
@click.option("--timeout", type=float, default=120.0, show_default=True,
              help="Seconds QEMU may run before it is killed.")
def command(model: Path, board: str, out_dir: Path, schedule: str, fuse: bool, sparse: bool,
            input_path: Path | None, sram: str | None, run: bool, timeout: float) -> None:
    """Build MODEL into a firmware image for --board; memory is measured from the linker map.

    Example: tinymcu firmware kws_ref_model.tflite --board qemu-mps2-an386 --out fw --run
    """
    from ..firmware_templates.pipeline import make_firmware

    data = _load_input(input_path) if input_path else None
    report = make_firmware(model, board, out_dir, schedule=schedule, fuse=fuse, sparse=sparse,
                           data=data,
                           sram_bytes=parse_size(sram) if sram else None, run=run,
                           timeout=timeout)
    fw = report.firmware
    click.echo(f"{fw.board}: {report.schedule} schedule, image {fw.elf}")
    click.echo(f"  arena   planner {report.planner_arena_bytes:,} B, "
               f"map .bss.{fw.arena_symbol} {fw.arena_symbol_bytes:,} B")
    click.echo(f"  SRAM    {fw.sram_bytes:,} / {fw.target.ram_bytes:,} B (map: .data "
               f"{fw.data_bytes:,} + .bss {fw.bss_bytes:,} + stack {fw.stack_bytes:,}; "
               f"call-graph stack bound {fw.stack_bound:,})")
    click.echo(f"  flash   {fw.flash_bytes:,} / {fw.target.flash_bytes:,} B (map: code "
               f"{fw.text_bytes:,} + rodata {fw.rodata_bytes:,} + .data {fw.data_bytes:,})")
    click.echo(f"  weights codegen {report.codegen_const_bytes:,} B, map model.o .rodata "
               f"{fw.model_rodata_bytes:,} B")
    if report.qemu is not None:
        q = report.qemu
        insn = f" (~{q.instructions:,} instructions)" if q.instructions is not None else ""
        click.echo(f"  QEMU    {q.machine}: {q.ticks:,} SysTick ticks{insn} with -icount "
                   f"shift=0, stack used {q.stack_used:,} B")
        click.echo(f"  output  {np.array2string(q.output[:16], separator=' ')}"
                   f"{' …' if q.output.size > 16 else ''}")
        click.echo("  emulator: bit-exact" if report.bit_exact else "  emulator: MISMATCH")
    write_atomic(out_dir / "firmware.json", json.dumps(report.to_dict(), indent=2) + "\n")
    report.verify()
