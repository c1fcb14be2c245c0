"""`tinymcu codegen`: write the planned int8 model as self-contained, bit-exact C99 sources."""

from __future__ import annotations

from pathlib import Path

import click

from tinymcu import inputs
from tinymcu.boards import DEFAULT_BOARD, get_board
from tinymcu.inputs import BOARD, SIZE


@click.command("codegen")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Directory to write model.h, model.c (NAME.h, NAME.c with --prefix) and "
                   "the runtime headers into "
                   "(replaced atomically).")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True, help="Op by op, patch-based, or auto (patch only if needed).")
@click.option("--fuse", is_flag=True,
              help="Run each stride-2 1x1-expand + depthwise pair channel by channel, so the "
                   "expanded tensor never exists (same outputs, less SRAM).")
@click.option("--sparse", is_flag=True,
              help="Store conv/depthwise/FC filters as a 1-bit-per-weight mask plus the non-zero "
                   "values (pruned models: the flash format `tinymcu prune` budgets).")
@click.option("--stream", is_flag=True,
              help="Stream the input: NAME_run_streamed(read, ctx) asks your read function "
                   "for the rows each tile needs, so the input image is never in the arena "
                   "(with --schedule patch: the planner's figure without the input; auto: "
                   "streamed op by op if that fits the budget, else patch).")
@click.option("--optimize", type=click.Choice(["speed", "memory"]),
              help="speed: the fast kernels with their scratch (im2col columns, padded "
                   "depthwise planes); memory: the direct loops, smallest arena. Default: "
                   "speed if its arena fits the SRAM budget, else memory.")
@click.option("--board", type=BOARD,
              help=f"Board preset for the SRAM budget; default {DEFAULT_BOARD}.")
@click.option("--sram", type=SIZE, help="SRAM budget, e.g. 256KiB (overrides the board's).")
@click.option("--prefix", default="tinymcu", show_default=True,
              help="API prefix: NAME_run(), NAME_invoke(), NAME_ARENA_BYTES ... in NAME.h / "
                   "NAME.c, so several models link into one firmware (the default keeps "
                   "tinymcu_* in model.h / model.c).")
def command(model: Path, out_dir: Path, schedule: str, fuse: bool, sparse: bool,
            stream: bool, optimize: str | None, board: str | None, sram: int | None,
            prefix: str) -> None:
    """Generate C99 code that runs MODEL (.tflite, int8) in one static arena of exactly the
    planned size: `cc -std=c99 -I OUT OUT/model.c main.c` builds it (API in OUT/model.h).

    Exit 0 when written, 1 when the planned arena exceeds the SRAM budget (nothing written),
    2 on bad input or an op the C runtime lacks.

    Example: tinymcu codegen kws_ref_model.tflite --out build/kws --schedule auto --board
    arduino-nano-33-ble --prefix kws
    """
    from tinymcu.mcu_runtime.codegen import check_prefix, codegen_model

    check_prefix(prefix)
    inputs.model_file(model)
    inputs.out_dir(out_dir, [model])
    budget = sram if sram is not None else get_board(board or DEFAULT_BOARD).sram_bytes
    result = codegen_model(model, out_dir, schedule=schedule, fuse=fuse, sram_bytes=budget,
                           enforce_budget=True, sparse=sparse, prefix=prefix,
                           stream=stream, optimize=optimize)
    streamed = " (input streamed)" if stream else ""
    click.echo(f"{result.schedule} schedule ({result.optimize}){streamed}, {result.steps} "
               f"steps: arena "
               f"{result.arena_bytes:,} B (SRAM budget {budget:,} B), constants "
               f"{result.const_bytes:,} B")
    click.echo(f"wrote {', '.join(p.name for p in result.files)} to {out_dir}")
