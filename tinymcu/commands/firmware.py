"""`tinymcu firmware`: generate C for a model, build a board's firmware image, run it on QEMU."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from tinymcu import inputs
from tinymcu.boards import DEFAULT_BOARD
from tinymcu.inputs import SIZE
from tinymcu.outputs import atomic_dir


@click.command("firmware")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", default=DEFAULT_BOARD, show_default=True,
              help="Board project (see `tinymcu boards`): qemu-mps2-an386 (-4m: 4 MiB RAM "
                   "for models over 256 KiB), qemu-netduinoplus2 and qemu-microbit run in "
                   "QEMU; the Nucleo boards and arduino-nano-33-ble build with a UART console.")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory for the project, app.elf, app.map and firmware.json.")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True)
@click.option("--fuse", is_flag=True,
              help="Fuse stride-2 1x1-expand + depthwise pairs (less SRAM, same outputs).")
@click.option("--sparse", is_flag=True,
              help="Store conv/depthwise/FC filters as a bitmask plus non-zero values (pruned "
                   "models need less flash; same outputs).")
@click.option("--stream", is_flag=True,
              help="Stream the input: main.c hands the model the rows each tile needs from "
                   "the test input in flash (NAME_run_streamed), so the image is never in "
                   "SRAM; the patch search then leaves the input out of its count.")
@click.option("--optimize", type=click.Choice(["speed", "memory"]),
              help="speed: the fast kernels with their scratch (im2col columns, padded "
                   "depthwise planes); memory: the direct loops, smallest arena. Default: "
                   "speed if its arena fits the SRAM budget, else memory.")
@click.option("--input", "input_path", type=click.Path(path_type=Path),
              help="int8 .npy test input embedded in the image (default: seeded random).")
@click.option("--sram", type=SIZE,
              help="Shrink the board's RAM region, e.g. 64KiB (the linker enforces it).")
@click.option("--run", is_flag=True,
              help="Run the image on QEMU and compare its output with the emulator bit for bit "
                   "(exit 3 on a mismatch).")
@click.option("--timeout", type=click.FloatRange(0, 86400, min_open=True), default=120.0,
              show_default=True,
              help="Seconds QEMU may run before it is killed.")
def command(model: Path, board: str, out_dir: Path, schedule: str, fuse: bool, sparse: bool,
            stream: bool, optimize: str | None, input_path: Path | None, sram: int | None,
            run: bool,
            timeout: float) -> None:
    """Build MODEL into a firmware image for --board; memory is measured from the linker map.

    Example: tinymcu firmware kws_ref_model.tflite --board qemu-mps2-an386 --out fw --run
    """
    from tinymcu.firmware_templates.pipeline import make_firmware

    inputs.model_file(model)
    inputs.out_dir(out_dir, [model, input_path])
    data = None
    if input_path is not None:  # the image embeds the model's one input
        want = inputs.model_inputs(model)
        data = inputs.load_arrays(input_path, want[:1] if len(want) == 1 else want)[0]
    # One staging directory holds everything, firmware.json included, and is renamed into
    # place once, after the QEMU run: a timeout, a mismatch or a signal leaves the old OUT.
    with atomic_dir(out_dir) as stage:
        report = make_firmware(model, board, stage, schedule=schedule, fuse=fuse,
                               sparse=sparse, data=data, sram_bytes=sram, run=run,
                               timeout=timeout, stream=stream, optimize=optimize)
        (stage / "firmware.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    fw = report.firmware
    streamed = ", input streamed" if report.streamed else ""
    click.echo(f"{fw.board}: {report.schedule} schedule ({report.optimize} kernels)"
               f"{streamed}, image "
               f"{out_dir / fw.elf.name}")
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
    report.verify()  # after the rename: a mismatch keeps its evidence (firmware.json says so)
