"""Keep TensorFlow's C++ chatter off the terminal.

TensorFlow's import and the TFLite converter write status lines straight to file descriptor 2
(absl logging before InitializeLog, the oneDNN notice, "fully_quantize: ..."), bypassing
``sys.stderr`` and ``TF_CPP_MIN_LOG_LEVEL``. Our stderr is reserved for progress and the one
line an error gets, so those calls run with the descriptor pointed at /dev/null. Errors still
arrive as Python exceptions with their text.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def quiet_fd(fd: int = 2) -> Iterator[None]:
    """Point ``fd`` at /dev/null for the duration of the block.

    Python-level writes to ``sys.stderr`` (rich progress during calibration) keep going to
    the real stderr through a duplicate of the original descriptor.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    py_stderr = sys.stderr
    real = None
    try:
        with open(os.devnull, "w") as null, os.fdopen(os.dup(saved), "w") as real:
            os.dup2(null.fileno(), fd)
            if fd == 2 and _is_fd(py_stderr, 2):
                sys.stderr = real
            yield
    finally:
        sys.stderr = py_stderr
        _repoint_log_handlers(real, py_stderr)
        os.dup2(saved, fd)
        os.close(saved)


def _repoint_log_handlers(stream: Any, to: Any) -> None:
    """A logging handler created inside the block (torchao, absl) bound itself to our
    temporary stand-in for ``sys.stderr``, which is closed now: point it at the real one,
    or its next message becomes a "--- Logging error ---" traceback."""
    import logging

    if stream is None:
        return
    loggers = [logging.getLogger(), *(lg for lg in logging.Logger.manager.loggerDict.values()
                                      if isinstance(lg, logging.Logger))]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, logging.StreamHandler) and h.stream is stream:
                h.stream = to  # not setStream(): it flushes the closed stream first


def _is_fd(stream: Any, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (OSError, ValueError, AttributeError):
        return False  # pytest's capture or another replacement: leave it alone


def import_tensorflow() -> Any:
    """``import tensorflow`` without its start-up log lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with quiet_fd(2):
        import tensorflow

    return tensorflow


@contextlib.contextmanager
def captured(sink: list[str]) -> Iterator[None]:
    """Collect what torch, onnxruntime, TensorFlow and litert-torch would print into ``sink``.

    Python warnings (TorchScript's "no signature found", torch.onnx's tracer warnings) are
    recorded instead of shown, and C-level writes to file descriptors 1 and 2 (litert's stage
    log, onnxruntime, TensorFlow) go to a temporary file whose lines are kept. The export
    report lists them; the terminal keeps our progress lines (Python's ``sys.stderr`` still
    reaches the real stderr) and a one-line error. Each distinct message is kept once.
    """
    import tempfile
    import warnings

    with tempfile.TemporaryFile(mode="w+") as tmp, \
            warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
        py_streams = sys.stdout, sys.stderr
        real_err = None
        try:
            with os.fdopen(os.dup(saved[2]), "w") as real_err:
                for fd in (1, 2):
                    os.dup2(tmp.fileno(), fd)
                if _is_fd(py_streams[1], 2):
                    sys.stderr = real_err
                yield
                sys.stdout.flush()
        finally:
            sys.stdout, sys.stderr = py_streams
            _repoint_log_handlers(real_err, py_streams[1])
            for fd, dup in saved.items():
                os.dup2(dup, fd)
                os.close(dup)
            tmp.seek(0)
            lines = [f"{w.category.__name__}: {str(w.message).strip()}" for w in rec]
            lines += [ln.strip() for ln in tmp.read().splitlines() if ln.strip()]
            for line in lines:
                if line not in sink:
                    sink.append(line)
