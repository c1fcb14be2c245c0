"""Reading the ``--input`` arrays commands take (one place, one set of error messages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import TinymcuError


def load_inputs(path: Path) -> list[np.ndarray]:
    """The model inputs in ``path``: one array from a .npy, or every array of an .npz in order."""
    if not path.is_file():
        raise TinymcuError(f"--input {path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise TinymcuError(f"--input {path}: not a .npy/.npz file ({e})") from None
    if isinstance(data, np.ndarray):
        return [data]
    return [data[k] for k in data.files]
