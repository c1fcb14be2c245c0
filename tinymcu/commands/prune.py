"""`tinymcu prune`: federated pruning on Flower (FedTiny or a baseline) in simulation."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from tinymcu import inputs
from tinymcu.errors import TinymcuError
from tinymcu.inputs import BOARD, SIZE_TEXT
from tinymcu.prune.config import METHODS

EXAMPLE = """\b
Example:
  tinymcu prune --model demo_cnn --data digits --clients 10 --alpha 0.5 \\
      --rounds 30 --density 0.1 --method fedtiny --out runs/fedtiny
  tinymcu prune --model demo_cnn --data digits --board arduino-nano-33-ble --out runs/nano
  tinymcu prune --model resnet8 --data cifar.npz --sram 12KiB --flash 1MiB --structured \\
      --out runs/narrow       # channels narrowed until the planned SRAM fits
  tinymcu prune ... --out runs/fedtiny --resume      # continue a killed run
"""


@click.command(epilog=EXAMPLE)
@click.option("--model", default="demo_cnn", show_default=True,
              help="Zoo name (demo_cnn, mobilenetv2, resnet8, ds_cnn) or package.module:factory.")
@click.option("--data", default="digits", show_default=True,
              help="'digits', 'mnist1d', 'animal-mnist' (built in, no download), a .npz with x "
                   "and y, or an image folder (one sub-folder per class).")
@click.option("--clients", default=10, show_default=True, type=int)
@click.option("--alpha", default=0.5, show_default=True, type=float,
              help="Dirichlet α of the non-IID split; 0 for IID.")
@click.option("--rounds", default=30, show_default=True, type=int)
@click.option("--density", type=float, help="Fraction of weights kept, e.g. 0.05.")
@click.option("--board", type=BOARD,
              help="Board preset (tinymcu boards): its flash sets the density, its "
              "SRAM gates the planned activation arena before training.")
@click.option("--sram", type=SIZE_TEXT,
              help="SRAM budget instead of --board's, e.g. 256KiB (gates the arena).")
@click.option("--flash", type=SIZE_TEXT,
              help="Flash budget instead of --board's, e.g. 1MiB (sets the density).")
@click.option("--structured", is_flag=True,
              help="When activations exceed SRAM, narrow every layer's channels (widest width "
                   "multiplier whose planned arena fits) instead of failing.")
@click.option("--method", type=click.Choice(list(METHODS)), default="fedtiny", show_default=True,
              help="fedtiny, or a baseline: feddst, globalmp (global magnitude, per-layer "
                   "floor), erkmp (ERK layer-wise magnitude), dense.")
@click.option("--fraction", default=1.0, show_default=True, type=float,
              help="Share of the clients sampled per round (FedAvg's fraction_train).")
@click.option("--out", required=True, help="Output directory (model, masks, report.json).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=2, show_default=True, type=int, help="Local epochs per round.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT.partial/checkpoint.pt.")
def command(model: str, data: str, clients: int, alpha: float, rounds: int,
            density: float | None, board: str | None, sram: str | None, flash: str | None,
            structured: bool, method: str, fraction: float, out: str, seed: int, epochs: int,
            device: str, resume: bool) -> None:
    """Find a sparse model for a microcontroller without centralising data (FedTiny).

    With --board or --sram, the model's int8 activation arena is planned before training by
    the same planner `tinymcu check` uses (op by op, else the cheapest patch schedule that
    fits); over budget exits 1 unless --structured narrows the channels until it fits.
    """
    from rich.console import Console

    from tinymcu.prune.config import PruneConfig

    console = Console()
    lines = []
    inputs.out_dir(Path(out), [data])
    if density is not None and (board or flash):
        raise TinymcuError("give either --density or a flash budget (--board/--flash), not both")
    if method != "dense" and density is None and not (board or flash):
        raise TinymcuError("give --density, --board, or --flash (with --sram)")
    if structured and not (board or sram):
        raise TinymcuError("--structured needs an SRAM budget: --board or --sram")
    width, sram_bytes = 1.0, 0
    if board or sram:
        width, sram_bytes, line = _sram_budget(model, data, board, sram, seed, structured)
        lines.append(line)
    if method == "dense":
        density = 1.0
    elif density is None:
        density, line = _density_from_board(model, data, board, sram, flash, seed, width)
        lines.append(line)
    cfg = PruneConfig(model=model, data=data, clients=clients, alpha=alpha, rounds=rounds,
                      density=density, method=method, out=out, seed=seed, epochs=epochs,
                      device=device, resume=resume, width=width, sram=sram_bytes,
                      fraction=fraction)
    for line in lines:
        console.print(line)
    # Flower logs every aggregation at INFO; the progress lines below say the same, better.
    logging.getLogger("flwr").addFilter(lambda rec: rec.levelno >= logging.WARNING)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from tinymcu.prune.run import run_pruning

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), console=console) as progress:
        task = progress.add_task(f"{method} d={density:.3f}", total=rounds, status="starting")

        def on_round(rec: dict) -> None:
            status = (f"acc {rec['test_acc']:.4f}  loss {rec['test_loss']:.3f}  "
                      f"density {rec['density']:.2%}" + ("  (skipped)" if rec["skipped"] else ""))
            progress.console.print(f"round {rec['round']:3d}/{rounds}  {status}")
            progress.update(task, completed=rec["round"], status=status)

        result = run_pruning(cfg, on_round=on_round)
    rep = result.report
    console.print(f"[green]done[/]: accuracy {rep['final_accuracy']:.4f}, density "
                  f"{rep['density']:.2%}, client→server {rep['client_to_server_bytes']:,} B, "
                  f"measured client peak memory {rep['client_peak_bytes']:,} B")
    if "sram" in rep:
        from tinymcu.prune.budget import SramPlan

        console.print(f"planned {SramPlan.from_dict(rep['sram']).describe()} at width x{width}")
    console.print(f"model: {result.model_json}; export it with: {export_command(result.out, data)}",
                  markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {result.out / 'report.json'}")


def export_command(out: Path, data: str) -> str:
    """The `tinymcu export` line for a finished run, quoted for a POSIX shell: it calibrates
    on the data the run trained on and writes into OUT/export."""
    import shlex

    return (f"tinymcu export {shlex.quote(str(out))} --calib {shlex.quote(data)} "
            f"--out {shlex.quote(str(out / 'export'))}")


def _board(board: str | None, sram: str | None, flash: str | None) -> tuple[int, int, str]:
    """(SRAM, flash, label); --sram/--flash override the board's (0 when neither gives one)."""
    from tinymcu.boards import get_board, parse_size

    sram_b = flash_b = 0
    name = ""
    if board:
        b = get_board(board)
        sram_b, flash_b, name = b.sram_bytes, b.flash_bytes, b.name
    if sram:
        sram_b, name = parse_size(sram), f"{name} SRAM {sram}".strip()
    if flash:
        flash_b, name = parse_size(flash), f"{name} flash {flash}".strip()
    return sram_b, flash_b, name


def _sram_budget(model: str, data: str, board: str | None, sram: str | None, seed: int,
                 structured: bool) -> tuple[float, int, str]:
    """(width, SRAM bytes, line): the planned arena must fit; OverBudget (exit 1) otherwise,
    unless ``structured`` finds a channel width multiplier that fits."""
    from tinymcu.prune import budget
    from tinymcu.prune import data as D

    sram_b, _, name = _board(board, sram, None)
    ds = D.load(data)

    def build(f: float):
        return budget.build_at_width(model, f, ds.num_classes, ds.input_shape[0], seed)

    if structured:
        choice = budget.structured_width(build, ds.input_shape, sram_b)
        width, planned = choice.width, choice.sram
    else:
        width, planned = 1.0, budget.check_sram(build(1.0), ds.input_shape, sram_b)
    line = f"{name}: planned {planned.describe()}"
    if structured:
        line += f" → width x{width}" + (" (full width fits)" if width == 1.0 else "")
    return width, sram_b, line


def _density_from_board(model: str, data: str, board: str | None, sram: str | None,
                        flash: str | None, seed: int, width: float = 1.0) -> tuple[float, str]:
    """Density whose sparse weights (bitmask + non-zero int8 + int32 biases) fit the flash."""
    from tinymcu.prune import budget
    from tinymcu.prune import data as D

    _, flash_b, name = _board(board, sram, flash)
    ds = D.load(data)
    net = budget.build_at_width(model, width, ds.num_classes, ds.input_shape[0], seed)
    avail = flash_b - budget.DEFAULT_RESERVE
    density = budget.density_for_flash(net, flash_b)
    return density, (f"{name}: weights {budget.dense_flash_bytes(net):,} B dense int8, "
                     f"{avail:,} B of flash for weights → density {density:.3f}")
