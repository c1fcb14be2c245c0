"""The `tinymcu` command: a thin click shell over the Python API.

Commands live in ``tinymcu/commands/<name>.py`` and are imported only when invoked, so
``tinymcu check`` never pays for (or needs) TensorFlow or torch. Every error the library
raises as :class:`~tinymcu.errors.TinymcuError` becomes one line on stderr and its exit code
(2 bad input, 1 over budget); nothing prints a traceback unless ``TINYMCU_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from . import __version__
from .errors import TinymcuError

COMMANDS: dict[str, str] = {
    "demo": "Run the whole pipeline on built-in data (digits).",
    "prune": "Federated pruning (FedTiny) on Flower.",
    "export": "PyTorch/ONNX → int8 TFLite → C arrays for TFLM.",
    "check": "Will it fit? Memory plan and budget gate for CI.",
    "emulate": "Run an int8 .tflite in a simulated SRAM arena.",
    "codegen": "Generate the C99 int8 runtime code for a model at its planned arena offsets.",
    "firmware": "Build a model's firmware image for a board; --run checks it on QEMU bit for bit.",
    "boards": "List the board presets.",
}


class LazyGroup(click.Group):
    """Imports a command's module on first use to keep start-up light."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return importlib.import_module(f"tinymcu.commands.{name}").command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinymcu")
def cli() -> None:
    """tinymcu: federated pruning → int8 TFLite → exact memory plan → bit-exact MCU runtime.

    Example: tinymcu check model.tflite --board arduino-nano-33-ble
    """


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map library errors onto exit codes without tracebacks."""
    try:
        cli.main(args=argv, prog_name="tinymcu", standalone_mode=False)
    except TinymcuError as e:
        click.echo(f"error: {e}" if e.exit_code == 2 else str(e), err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # a bug, not bad input: still one line, traceback on request
        if os.environ.get("TINYMCU_DEBUG"):
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (TINYMCU_DEBUG=1 shows the traceback)",
                   err=True)
        sys.exit(3)
    sys.exit(0)
