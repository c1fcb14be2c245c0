"""`tinymcu boards`: list the board presets and what tinymcu builds for each."""

import sys

import click
from rich.console import Console
from rich.table import Column, Table

from tinymcu.boards import BOARDS


def firmware_support(name: str) -> str:
    """What `tinymcu firmware` does for a preset: run on QEMU, build with a console, or
    nothing (check only)."""
    from tinymcu.firmware_templates.targets import TARGETS

    t = TARGETS.get(name)
    if t is None:
        return "check only"
    console = t.console.description.split(" (")[0].split(",")[0]
    return f"QEMU run, {console}" if t.runnable else f"build, {console}"


@click.command("boards")
def command() -> None:
    """List board presets (SRAM and flash budgets, firmware support).

    Example: tinymcu boards
    """
    table = Table("core", "SRAM", "flash", "firmware", "note")
    # the board name is what users type: never cut it short, whatever the terminal width
    table.columns.insert(0, Column("board", no_wrap=True, min_width=max(map(len, BOARDS))))
    for b in BOARDS.values():
        table.add_row(b.name, b.core, f"{b.sram_bytes // 1024} KiB", f"{b.flash_bytes // 1024} KiB",
                      firmware_support(b.name), b.note)
    # piped (grep, a file): full rows, one line per board, instead of an 80-column wrap
    Console(width=None if sys.stdout.isatty() else 200).print(table)
