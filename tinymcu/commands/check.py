"""`tinymcu check`: the memory gate for CI (exit 0 fits, 1 over budget, 2 bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..boards import DEFAULT_BOARD, get_board, parse_size
from ..errors import OverBudget, TinymcuError
from ..outputs import write_atomic


def _percent(text: str) -> float:
    t = text.strip().rstrip("%")
    try:
        return float(t) / 100
    except ValueError:
        raise TinymcuError(f"--max-regression {text!r}: expected a percentage like 5%") from None


@click.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--board", help=f"Board preset (see `tinymcu boards`); default {DEFAULT_BOARD}.")
@click.option("--sram", help="SRAM budget, e.g. 256KiB (overrides the board's).")
@click.option("--flash", help="Flash budget, e.g. 1MiB (overrides the board's).")
@click.option("--target", type=click.Choice(["tinymcu", "tflm"]), default="tinymcu",
              show_default=True, help="Arena of our runtime, or predicted TFLM arena (32-bit).")
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
def command(model: Path, board: str | None, sram: str | None, flash: str | None, target: str,
            schedule: str, fuse: bool, json_path: Path | None, markdown: Path | None,
            plot: Path | None, baseline: Path | None, max_regression: str) -> None:
    """Plan MODEL (.tflite, int8) and check it fits the SRAM/flash budget.

    Exit 0 when it fits, 1 when over budget or regressed past --max-regression, 2 on bad input.

    Example: tinymcu check model.tflite --board arduino-nano-33-ble --schedule auto
    --json mem.json --markdown mem.md --plot mem.svg
    """
    from ..mcu_runtime.check import Budget, apply_baseline, check_model
    from ..mcu_runtime.report import print_terminal, to_json, to_markdown, write_plot

    b = get_board(board or DEFAULT_BOARD)
    budget = Budget(parse_size(sram) if sram else b.sram_bytes,
                    parse_size(flash) if flash else b.flash_bytes,
                    None if (sram and flash) else b.name)
    report = check_model(model, budget, target=target, schedule=schedule, fuse=fuse)
    if baseline is not None:
        try:
            base = json.loads(baseline.read_text())
        except (OSError, ValueError) as e:
            raise TinymcuError(f"--baseline {baseline}: {e}") from None
        apply_baseline(report, base, _percent(max_regression))
    print_terminal(report)
    if json_path:
        write_atomic(json_path, to_json(report))
    if markdown:
        write_atomic(markdown, to_markdown(report))
    if plot:
        write_atomic(plot, None, writer=lambda p: write_plot(report, p))
    if not report.fits:
        raise OverBudget(f"{model}: {report.verdict}")
