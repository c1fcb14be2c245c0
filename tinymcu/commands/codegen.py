"""`tinymcu codegen`: write the planned int8 model as self-contained, bit-exact C99 sources."""

from __future__ import annotations

from pathlib import Path

import click

from ..boards import DEFAULT_BOARD, get_board, parse_size


@click.command("codegen")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write model.h, model.c and the runtime headers into "
                   "(replaced atomically).")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True, help="Op by op, patch-based, or auto (patch only if needed).")
@click.option("--fuse", is_flag=True,
              help="Run each stride-2 1x1-expand + depthwise pair channel by channel, so the "
                   "expanded tensor never exists (same outputs, less SRAM).")
@click.option("--sparse", is_flag=True,
              help="Store conv/depthwise/FC filters as a 1-bit-per-weight mask plus the non-zero "
                   "values (pruned models: the flash format `tinymcu prune` budgets).")
@click.option("--board", help=f"Board preset for the SRAM budget; default {DEFAULT_BOARD}.")
@click.option("--sram", help="SRAM budget, e.g. 256KiB (overrides the board's).")
def command(model: Path, out_dir: Path, schedule: str, fuse: bool, sparse: bool,
            board: str | None, sram: str | None) -> None:
    """Generate C99 code that runs MODEL (.tflite, int8) in one static arena of exactly the
    planned size: `cc -std=c99 -I OUT OUT/model.c main.c` builds it (API in OUT/model.h).

    Exit 0 when written, 1 when the planned arena exceeds the SRAM budget (nothing written),
    2 on bad input or an op the C runtime lacks.

    Example: tinymcu codegen kws_ref_model.tflite --out build/kws --schedule auto --board
    arduino-nano-33-ble
    """
    from ..mcu_runtime.codegen import codegen_model

    b = get_board(board or DEFAULT_BOARD)
    budget = parse_size(sram) if sram else b.sram_bytes
    result = codegen_model(model, out_dir, schedule=schedule, fuse=fuse, sram_bytes=budget,
                           enforce_budget=True, sparse=sparse)
    click.echo(f"{result.schedule} schedule, {result.steps} steps: arena "
               f"{result.arena_bytes:,} B (SRAM budget {budget:,} B), constants "
               f"{result.const_bytes:,} B")
    click.echo(f"wrote {', '.join(p.name for p in result.files)} to {out_dir}")
