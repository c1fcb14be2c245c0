"""`tinymcu prune`: federated pruning on Flower (FedTiny or a baseline) in simulation."""

from __future__ import annotations

import logging

import click

from tinymcu.errors import TinymcuError

EXAMPLE = """\b
Example:
  tinymcu prune --model demo_cnn --data digits --clients 10 --alpha 0.5 \\
      --rounds 30 --density 0.1 --method fedtiny --out runs/fedtiny
  tinymcu prune --model demo_cnn --data digits --board arduino-nano-33-ble --out runs/nano
  tinymcu prune ... --out runs/fedtiny --resume      # continue a killed run
"""


@click.command(epilog=EXAMPLE)
@click.option("--model", default="demo_cnn", show_default=True,
              help="Zoo name (demo_cnn, mobilenetv2, resnet8, ds_cnn) or package.module:factory.")
@click.option("--data", default="digits", show_default=True,
              help="'digits', a .npz with x and y, or an image folder (one sub-folder per class).")
@click.option("--clients", default=10, show_default=True, type=int)
@click.option("--alpha", default=0.5, show_default=True, type=float,
              help="Dirichlet α of the non-IID split; 0 for IID.")
@click.option("--rounds", default=30, show_default=True, type=int)
@click.option("--density", type=float, help="Fraction of weights kept, e.g. 0.05.")
@click.option("--board", help="Board preset whose flash sets the density (tinymcu boards).")
@click.option("--sram", help="SRAM budget instead of --board, e.g. 256KiB.")
@click.option("--flash", help="Flash budget instead of --board, e.g. 1MiB.")
@click.option("--method", type=click.Choice(["fedtiny", "globalmp", "dense"]), default="fedtiny",
              show_default=True)
@click.option("--out", required=True, help="Output directory (model, masks, report.json).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=2, show_default=True, type=int, help="Local epochs per round.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--resume", is_flag=True, help="Continue from OUT.partial/checkpoint.pt.")
def command(model: str, data: str, clients: int, alpha: float, rounds: int,
            density: float | None, board: str | None, sram: str | None, flash: str | None,
            method: str, out: str, seed: int, epochs: int, device: str, resume: bool) -> None:
    """Find a sparse model for a microcontroller without centralising data (FedTiny)."""
    from rich.console import Console

    from tinymcu.prune.config import PruneConfig

    console = Console()
    budget_line = None
    if method == "dense":
        density = 1.0
    elif density is None:
        if not (board or (sram and flash)):
            raise TinymcuError("give --density, --board, or both --sram and --flash")
        density, budget_line = _density_from_board(model, data, board, sram, flash, seed)
    elif board or sram or flash:
        raise TinymcuError("give either --density or a board budget, not both")
    cfg = PruneConfig(model=model, data=data, clients=clients, alpha=alpha, rounds=rounds,
                      density=density, method=method, out=out, seed=seed, epochs=epochs,
                      device=device, resume=resume)
    if budget_line:
        console.print(budget_line)
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
                  f"top-k client memory {rep['topk_client_memory_bytes']:,} B")
    console.print(f"model: {result.model_json} (export with tinymcu export)")
    console.print(f"report: {result.out / 'report.json'}")


def _density_from_board(model: str, data: str, board: str | None, sram: str | None,
                        flash: str | None, seed: int) -> tuple[float, str]:
    from tinymcu.boards import get_board, parse_size
    from tinymcu.prune import budget
    from tinymcu.prune import data as D
    from tinymcu.prune.modelspec import build_model

    if board:
        b = get_board(board)
        sram_b, flash_b, name = b.sram_bytes, b.flash_bytes, b.name
    else:
        sram_b, flash_b, name = parse_size(sram), parse_size(flash), f"{sram}/{flash}"
    ds = D.load(data)
    net = build_model(model, ds.num_classes, ds.input_shape[0], seed)
    bb = budget.budget_for(net, ds.input_shape, sram_b, flash_b)
    line = (f"{name}: weights {bb.dense_flash:,} B dense int8, {bb.flash_avail:,} B of flash "
            f"for weights → density {bb.density:.3f}; activations need ≥ "
            f"{bb.activation_lower_bound:,} B of {sram_b:,} B SRAM layer by layer")
    if not bb.sram_may_fit:
        line += " [yellow](over: use a narrower model or a patch schedule)[/]"
    return bb.density, line
