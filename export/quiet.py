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
    try:
        with open(os.devnull, "w") as null, os.fdopen(os.dup(saved), "w") as real:
            os.dup2(null.fileno(), fd)
            if fd == 2 and _is_fd(py_stderr, 2):
                sys.stderr = real
            yield
    finally:
        sys.stderr = py_stderr
        os.dup2(saved, fd)
        os.close(saved)


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
