"""`tinymcu emulate`: run an int8 .tflite inside one simulated SRAM arena at planned offsets."""

from __future__ import annotations

import io
from pathlib import Path

import click
import numpy as np

from tinymcu import inputs
from tinymcu.boards import DEFAULT_BOARD, get_board
from tinymcu.errors import TinymcuError, VerificationError
from tinymcu.inputs import BOARD, SIZE
from tinymcu.outputs import write_atomic


def _save_outputs(path: Path, outputs: list[np.ndarray]) -> None:
    buf = io.BytesIO()
    if path.suffix == ".npz":
        np.savez(buf, *outputs)
    elif len(outputs) == 1:
        np.save(buf, outputs[0])
    else:
        raise TinymcuError(f"--output {path}: the model has {len(outputs)} outputs; use .npz")
    write_atomic(path, writer=lambda p: p.write_bytes(buf.getvalue()))


@click.command("emulate")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help=".npy (one input) or .npz (inputs in order), as the model wants.")
@click.option("--output", "output_path", type=click.Path(path_type=Path),
              help="Where to write the outputs (.npy, or .npz for several).")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True)
@click.option("--fuse", is_flag=True,
              help="Run each stride-2 1x1-expand + depthwise pair channel by channel, so the "
                   "expanded tensor never exists (same outputs, less SRAM).")
@click.option("--board", type=BOARD, help=f"Budget for --schedule auto; default {DEFAULT_BOARD}.")
@click.option("--sram", type=SIZE, help="SRAM budget for --schedule auto, e.g. 256KiB.")
@click.option("--verify", is_flag=True,
              help="Also run the TFLM interpreter (needs tflite-micro) and compare bit for bit.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run the input N times back to back; a stateful model (SVDF, LSTM) "
                   "carries its state, and --verify checks every run. Outputs: the last run.")
def command(model: Path, input_path: Path, output_path: Path | None, schedule: str,
            fuse: bool, board: str | None, sram: int | None, verify: bool,
            repeat: int) -> None:
    """Execute MODEL on --input inside a simulated arena of exactly the planned size.

    Example: tinymcu emulate kws_ref_model.tflite --input x.npy --output y.npy --verify
    """
    from tinymcu.mcu_runtime.execute import execute

    inputs.model_file(model)
    if output_path is not None:
        inputs.out_file(output_path, [model, input_path], what="--output")
    arrays = inputs.load_arrays(input_path, inputs.model_inputs(model))
    budget = sram if sram is not None else get_board(board or DEFAULT_BOARD).sram_bytes
    result = execute(model, arrays, schedule=schedule, sram_bytes=budget, verify=verify,
                     fuse=fuse, repeat=repeat)
    click.echo(f"{result.schedule_kind} schedule: arena {result.arena_bytes:,} B, "
               f"high-water {result.high_water:,} B, {result.steps} steps")
    for i, out in enumerate(result.outputs):
        click.echo(f"output {i}: shape {list(out.shape)} {out.dtype} "
                   f"{np.array2string(out.ravel()[:16], separator=' ')}"
                   f"{' …' if out.size > 16 else ''}")
    if verify and result.tflm_error is None:
        runs = f" on all {repeat} runs" if repeat > 1 else ""
        click.echo(f"TFLM: bit-exact{runs}" if result.tflm_equal else "TFLM: MISMATCH")
    if output_path:
        _save_outputs(output_path, result.outputs)
    if verify and result.tflm_error is not None:
        raise TinymcuError(f"TFLM could not run the model, nothing verified: {result.tflm_error}")
    if verify and not result.tflm_equal:
        raise VerificationError("emulator and TFLM outputs differ")
