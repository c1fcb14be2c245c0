"""The first thing the ``tinymcu`` command does: make Ctrl-C and SIGTERM end it cleanly.

Until :func:`tinymcu.interrupts.install` runs, Python's own disposition applies: SIGINT
raises ``KeyboardInterrupt`` wherever the import machinery happens to be (a 20-line
traceback from inside ``enum``), SIGTERM kills the process silently (exit -15). Nothing has
been written at that point, so the right answer is to end at once with the command's one
line and exit code. This module imports nothing but builtins (``_signal``, ``os``: both
already loaded when the interpreter starts), so it closes that window a few milliseconds
after start-up instead of after the standard library's ``signal``/``threading`` imports.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # CPython builtin: typeshed has no stub
import os

#: signal number -> (exit code: the shell's 128 + number, the one line printed)
ENDINGS: dict[int, tuple[int, str]] = {
    _signal.SIGINT: (130, "interrupted (Ctrl-C)"),
    _signal.SIGTERM: (143, "terminated (SIGTERM)"),
}


def _end(signum: int, frame: object) -> None:
    code, line = ENDINGS[signum]
    os.write(2, f"{line}\n".encode())
    os._exit(code)


def exit_on_signal() -> None:
    """Route SIGINT and SIGTERM to an immediate one-line exit (replaced by
    :func:`tinymcu.interrupts.install` once a command starts doing work)."""
    for signum in ENDINGS:
        _signal.signal(signum, _end)
