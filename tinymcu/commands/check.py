"""`tinymcu check`: the memory gate for CI (exit 0 fits, 1 over budget, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tinymcu import inputs
from tinymcu.boards import DEFAULT_BOARD, get_board
from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.inputs import BOARD, SIZE
from tinymcu.outputs import write_atomic


def _percent(text: str) -> float:
    t = text.strip().rstrip("%")
    try:
        value = float(t) / 100
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise TinymcuError(f"--max-regression {text[:40]!r}: expected a percentage like 5%")
    return value


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", type=BOARD,
              help=f"Board preset (see `tinymcu boards`); default {DEFAULT_BOARD}.")
@click.option("--sram", type=SIZE, help="SRAM budget, e.g. 256KiB (overrides the board's).")
@click.option("--flash", type=SIZE, help="Flash budget, e.g. 1MiB (overrides the board's).")
@click.option("--target", type=click.Choice(["tinymcu", "tflm", "tflm-cmsis-nn"]),
              default="tinymcu", show_default=True,
              help="Arena of our runtime, or the smallest arena TFLM allocates in on a 32-bit "
                   "Cortex-M, with its reference or its CMSIS-NN kernels.")
@click.option("--schedule", type=click.Choice(["layer", "patch", "auto"]), default="layer",
              show_default=True, help="Op by op, patch-based, or auto (patch only if needed).")
@click.option("--fuse", is_flag=True,
              help="Run each stride-2 1x1-expand + depthwise pair channel by channel, so the "
                   "expanded tensor never exists (same outputs, less SRAM).")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write the JSON report.")
@click.option("--markdown", type=click.Path(path_type=Path), help="Write a Markdown summary.")
@click.option("--plot", type=click.Path(path_type=Path), help="Plot memory per step (.svg/.png).")
@click.option("--baseline", type=click.Path(path_type=Path), help="Earlier --json report.")
@click.option("--max-regression", default="5%", show_default=True,
              help="Allowed growth of arena/flash over --baseline.")
def command(model: Path, board: str | None, sram: int | None, flash: int | None, target: str,
            schedule: str, fuse: bool, json_path: Path | None, markdown: Path | None,
            plot: Path | None, baseline: Path | None, max_regression: str) -> None:
    """Plan MODEL (.tflite, int8) and check it fits the SRAM/flash budget.

    Exit 0 when it fits, 1 when over budget or regressed past --max-regression, 2 on bad input.

    Example: tinymcu check model.tflite --board arduino-nano-33-ble --schedule auto
    --json mem.json --markdown mem.md --plot mem.svg
    """
    from tinymcu.mcu_runtime.check import Budget, apply_baseline, check_model
    from tinymcu.mcu_runtime.report import print_terminal, to_json, to_markdown, write_plot

    inputs.model_file(model)
    limit = _percent(max_regression)
    for opt, path in (("--json", json_path), ("--markdown", markdown), ("--plot", plot)):
        if path is not None:
            inputs.out_file(path, [model, baseline], what=opt)
    base_text = inputs.read_text(baseline, "--baseline") if baseline is not None else None
    b = get_board(board or DEFAULT_BOARD)
    budget = Budget(sram if sram is not None else b.sram_bytes,
                    flash if flash is not None else b.flash_bytes,
                    None if (sram is not None and flash is not None) else b.name)
    report = check_model(model, budget, target=target, schedule=schedule, fuse=fuse)
    if base_text is not None:
        try:
            base = json.loads(base_text)
        except ValueError as e:
            raise TinymcuError(f"--baseline {baseline}: not a JSON report ({e})") from None
        apply_baseline(report, base, limit)
    print_terminal(report)
    if json_path:
        write_atomic(json_path, to_json(report))
    if markdown:
        write_atomic(markdown, to_markdown(report))
    if plot:
        write_atomic(plot, None, writer=lambda p: write_plot(report, p))
    if not report.fits:
        raise OverBudget(f"{model}: {report.verdict}")
