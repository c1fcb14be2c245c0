"""`tinymcu flash`: put a firmware image on a board (pyOCD, OpenOCD, st-flash or bossac)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from tinymcu.errors import VerificationError
from tinymcu.firmware_templates.flash import (
    PROBES,
    check_image,
    flash,
    flash_and_monitor,
    flash_plan,
    resolve_image,
)
from tinymcu.firmware_templates.serial_console import BAUD
from tinymcu.firmware_templates.targets import get_target


@click.command("flash")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--board", required=True, help="The board the image was built for.")
@click.option("--probe", type=click.Choice(PROBES),
              help="Flashing tool (default: pyocd; bossac on arduino-nano-33-ble).")
@click.option("--port", help="Serial port of the Arduino bootloader (bossac), e.g. /dev/ttyACM0.")
@click.option("--probe-id", help="pyOCD: unique ID of the probe to use when several are attached.")
@click.option("--monitor", metavar="PORT",
              help="Read the board's report from its console on PORT after flashing (e.g. the "
                   "ST-LINK's /dev/ttyACM0) and compare its output with the emulator's.")
@click.option("--baud", type=int, default=BAUD, show_default=True)
@click.option("--timeout", type=float, default=30.0, show_default=True,
              help="Seconds to wait for the complete report on --monitor.")
@click.option("--dry-run", is_flag=True, help="Print the exact commands, run nothing.")
def command(image: Path, board: str, probe: str | None, port: str | None,
            probe_id: str | None, monitor: str | None, baud: int, timeout: float,
            dry_run: bool) -> None:
    """Flash IMAGE (app.elf or a `tinymcu firmware --out` directory) onto --board.

    Example: tinymcu flash fw --board nucleo-f412zg --monitor /dev/ttyACM0
    """
    console = get_target(board).console.description
    if dry_run:
        elf = resolve_image(image)
        check_image(elf, get_target(board))
        click.echo(flash_plan(elf, board, probe, port).text())
        return
    if monitor is None:
        plan = flash(image, board, probe, port, probe_id)
        click.echo(f"{board}: flashed {plan.elf} with {plan.probe}; the report is on the "
                   f"board's console ({console})")
        return
    plan, run, expected = flash_and_monitor(image, board, monitor, probe, port, probe_id,
                                            baud, timeout)
    click.echo(f"{board}: flashed {plan.elf} with {plan.probe}; report on {monitor}:")
    click.echo(f"  status {run.status}, {run.ticks:,} SysTick ticks, stack used "
               f"{run.stack_used:,} B")
    click.echo(f"  output {np.array2string(run.output[:16], separator=' ')}"
               f"{' …' if run.output.size > 16 else ''}")
    if run.status != 0:
        raise VerificationError(f"tinymcu_run() returned {run.status} on {board}")
    if expected is None:
        click.echo("  (no firmware.json beside the image: nothing to compare with)")
        return
    if not np.array_equal(run.output, expected):
        diff = int(np.count_nonzero(run.output != expected))
        raise VerificationError(f"{board} output differs from the emulator in {diff} of "
                                f"{expected.size} bytes")
    click.echo("  emulator: bit-exact")
