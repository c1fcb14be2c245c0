"""The `tinymcu` command: a thin click shell over the Python API.

Commands live in ``tinymcu/commands/<name>.py`` and are imported only when invoked, so
``tinymcu check`` never pays for (or needs) TensorFlow or torch. Every error the library
raises as :class:`~tinymcu.errors.TinymcuError` becomes one line on stderr and its exit code
(2 bad input, 1 over budget); nothing prints a traceback unless ``TINYMCU_DEBUG=1``.
"""

from __future__ import annotations

import sys

if sys.argv and sys.argv[0].replace("\\", "/").rsplit("/", 1)[-1] in ("tinymcu",
                                                                     "__main__.py"):
    # the command, not a library import (tests, notebooks): before any other import
    from tinymcu.startup import exit_on_signal

    exit_on_signal()

import importlib  # noqa: E402
import os  # noqa: E402

import click  # noqa: E402

from tinymcu import __version__, interrupts  # noqa: E402
from tinymcu.errors import TinymcuError  # noqa: E402

COMMANDS: dict[str, str] = {
    "demo": "Run the whole pipeline on built-in data (digits).",
    "prune": "Federated pruning (FedTiny) on Flower.",
    "export": "PyTorch/ONNX → int8 TFLite → C arrays for TFLM.",
    "check": "Will it fit? Memory plan and budget gate for CI.",
    "emulate": "Run an int8 .tflite in a simulated SRAM arena.",
    "codegen": "Generate the C99 int8 runtime code for a model at its planned arena offsets.",
    "firmware": "Build a model's firmware image for a board; --run checks it on QEMU bit for bit.",
    "validate": "Run N real inputs on a QEMU board; compare each output with emulator and TFLM.",
    "package": "Wrap codegen output as a CMake library target or an Arduino library.",
    "flash": "Flash a firmware image onto a board (pyOCD, OpenOCD, st-flash, bossac).",
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


def _one_line(text: str) -> str:
    """Messages may quote file names or library text; stderr gets exactly one line."""
    return " ".join("".join(c if c.isprintable() else "?" for c in part)
                    for part in str(text).splitlines()) or "?"


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and map library errors onto exit codes without tracebacks.

    Ctrl-C and SIGTERM share one path (:mod:`tinymcu.interrupts`): the clean-up of every
    ``with``/``finally`` runs, then one line and exit 130 or 143.
    """
    interrupts.install()
    try:
        # make_context + invoke is click's main() without its KeyboardInterrupt handling,
        # which prints a blank line (a second stderr line) and calls EOFError an abort
        args = sys.argv[1:] if argv is None else list(argv)
        with cli.make_context("tinymcu", args) as ctx:
            cli.invoke(ctx)
    except TinymcuError as e:
        click.echo(_one_line(f"error: {e}" if e.exit_code == 2 else str(e)), err=True)
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo(interrupts.message(), err=True)
        interrupts.exit_now(interrupts.exit_code())
    except click.UsageError as e:
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
        click.echo(_one_line(f"error: {e.format_message()}{hint}"), err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(_one_line(f"error: {e.format_message()}"), err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except Exception as e:  # a bug, not bad input: still one line, traceback on request
        _internal(e)
    sys.exit(0)


def run() -> None:
    """The process entry point (`tinymcu`, `python -m tinymcu`): :func:`main`, then the end
    without interpreter shutdown. Once a command has finished, its outputs are complete,
    but a signal that lands while Python shuts down (TensorFlow's and torch's exit hooks
    take a while) would find the default disposition back in place and kill the process
    silently (exit -15); so the exit code is final here and late signals are ignored."""
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    interrupts.finish(code)


def _internal(e: BaseException) -> None:
    if os.environ.get("TINYMCU_DEBUG"):
        raise e
    click.echo(_one_line(f"internal error: {type(e).__name__}: {e} (TINYMCU_DEBUG=1 shows "
                         "the traceback)"), err=True)
    sys.exit(3)
