"""Ctrl-C and SIGTERM end a command the same way: clean-up runs, one line, exit 130 / 143.

SIGTERM (what ``kill``, CI runners and container stops send) would otherwise end Python
without running ``finally`` blocks, so :mod:`tinymcu.outputs`' temp directories stayed
behind. :func:`install` routes both signals to one handler that raises
:class:`KeyboardInterrupt` in the main thread, so every ``finally``/``with`` clean-up runs
exactly as for Ctrl-C, and remembers which signal it was for the exit code.

A library stuck in C code (Ray waiting on dead actors, say) may never return to Python to
see the exception; a watchdog thread then removes the registered temp paths, kills this
process's children and exits ``GRACE_SECONDS`` after the signal, so a signal always ends
the command in bounded time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from tinymcu.startup import ENDINGS

#: exit codes of a command ended by a signal (the shell's 128 + signal number)
EXIT_CODES = {signal.Signals(n): code for n, (code, _) in ENDINGS.items()}
#: how long clean-up may take after a signal before the watchdog ends the process
GRACE_SECONDS = 8.0

_received: list[int] = []
_note: list[str] = []
_reported: list[bool] = []
_temp_paths: set[Path] = set()
#: our descendants when the signal arrived: ``subprocess.run`` answers the interrupt by
#: SIGKILLing only its direct child, whose own children (the compiler's cc1/as) are then
#: re-parented away and no longer found by a later :func:`descendants` walk
_at_signal: list[int] = []
#: the terminal's stderr as it was at install(): the watchdog's line must reach it even
#: while export has file descriptor 2 pointed at /dev/null or a capture file
_stderr_fd: list[int] = []
_lock = threading.Lock()


def install() -> None:
    """Route SIGINT and SIGTERM to :func:`_handler` (main thread only; a no-op elsewhere).

    Call again after a library that installs its own handlers (``ray.init`` makes SIGTERM
    ``sys.exit(15)``, which skips our message and leaves Ray's processes behind)."""
    if threading.current_thread() is not threading.main_thread():
        return
    if not _stderr_fd:
        with contextlib.suppress(OSError):  # no stderr at all: the watchdog writes to fd 2
            _stderr_fd.append(os.dup(2))
    for sig in EXIT_CODES:
        signal.signal(sig, _handler)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block is done (a few renames that must not be split).

    Blocked at the OS level, so not even the C-level handler runs in between; a signal that
    arrives meanwhile is delivered, and raises, right after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, set(EXIT_CODES))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def received() -> int | None:
    """The first signal that ended this command, if any."""
    return _received[0] if _received else None


def exit_code() -> int:
    """130 for Ctrl-C (also when Python raised KeyboardInterrupt itself), 143 for SIGTERM."""
    return EXIT_CODES.get(signal.Signals(received() or signal.SIGINT), 130)


def message() -> str:
    """The one line printed when a signal ended the command (with the command's note)."""
    text = ENDINGS[received() or signal.SIGINT][1]
    return f"{text}; {_note[0]}" if _note else text


def set_note(text: str) -> None:
    """What the user can do next, added to the interrupt line (``prune``: --resume)."""
    _note[:] = [text]


def register_temp(path: Path) -> None:
    """A temp file or directory the watchdog must delete if clean-up never gets to run."""
    with _lock:
        _temp_paths.add(Path(path))


def unregister_temp(path: Path) -> None:
    with _lock:
        _temp_paths.discard(Path(path))


def _handler(signum: int, frame: FrameType | None) -> None:
    if _received:  # a second signal while cleaning up: the watchdog already bounds the wait
        return
    _received.append(signum)
    _at_signal[:] = descendants()
    threading.Thread(target=_watchdog, args=(EXIT_CODES[signal.Signals(signum)],),
                     daemon=True, name="tinymcu-signal-watchdog").start()
    raise KeyboardInterrupt


def _watchdog(code: int) -> None:
    time.sleep(GRACE_SECONDS)
    remove_temp_paths()
    kill_children(signal.SIGKILL, sorted(set(_at_signal) | set(descendants())))
    if not _reported:
        os.write(_stderr_fd[0] if _stderr_fd else 2,
                 f"{message()} (clean-up took over {GRACE_SECONDS:g} s; stopped)\n".encode())
    os._exit(code)


def exit_now(code: int) -> None:
    """End the process once the interrupt line is printed and our clean-up has run.

    Skips interpreter shutdown, which joins library threads (Flower's simulation driver)
    and runs their atexit hooks, and can wait on dead Ray actors for minutes; any
    process we started is stopped first (SIGTERM, then SIGKILL after a second)."""
    _reported.append(True)
    remove_temp_paths()
    # snapshots: a grandchild (the compiler's cc1, a Ray worker) whose parent died first is
    # re-parented away from us and drops out of a fresh descendants() walk
    kids = sorted(set(_at_signal) | set(descendants()))
    kill_children(signal.SIGTERM, kids)
    deadline = time.monotonic() + 1.0
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    kill_children(signal.SIGKILL, kids + descendants())
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def finish(code: int) -> None:
    """End the process with ``code`` after a command returned (success or a reported
    error): signals are ignored from here on, buffered output is flushed, logging closed,
    and the interpreter's shutdown is skipped (every with/finally clean-up already ran)."""
    for sig in EXIT_CODES:
        with contextlib.suppress(ValueError, OSError):  # not the main thread: no handlers
            signal.signal(sig, signal.SIG_IGN)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def remove_temp_paths() -> None:
    with _lock:
        paths = list(_temp_paths)
        _temp_paths.clear()
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def descendants(pid: int | None = None) -> list[int]:
    """Every live process below ``pid`` (default: this one), from /proc (Linux; [] elsewhere)."""
    root = os.getpid() if pid is None else pid
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie is dead: only its exit status waits to be collected)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def kill_children(sig: int = signal.SIGKILL, pids: list[int] | None = None) -> None:
    """Signal every descendant process (Ray's raylet, GCS and workers; QEMU; the compiler),
    or the ``pids`` snapshot taken earlier."""
    for pid in descendants() if pids is None else pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
