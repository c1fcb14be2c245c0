"""`tinymcu boards`: list the board presets."""

import click
from rich.console import Console
from rich.table import Table

from ..boards import BOARDS


@click.command("boards")
def command() -> None:
    """List board presets (SRAM and flash budgets).

    Example: tinymcu boards
    """
    table = Table("board", "core", "SRAM", "flash", "note")
    for b in BOARDS.values():
        table.add_row(b.name, b.core, f"{b.sram_bytes // 1024} KiB", f"{b.flash_bytes // 1024} KiB",
                      b.note)
    Console().print(table)
