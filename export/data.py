"""Built-in data and calibration arrays, as NCHW float32 — the layout PyTorch models take.

The digits set (sklearn, 8×8, values 0..16) ships with scikit-learn, so the demo, the tests
and the benchmarks run offline. One deterministic split is shared by the demo, the pruner
and the export benchmark so that "accuracy on the test split" means the same images everywhere.
"""

from __future__ import annotations

import numpy as np


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as ``(x, y)``: x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64."""
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = (bunch.images.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return x, bunch.target.astype(np.int64)


def train_test_split(x: np.ndarray, y: np.ndarray, test_fraction: float = 0.25,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded shuffle then split: ``(x_train, y_train, x_test, y_test)``.

    A plain permutation (not stratified) keeps it dependency-free and reproducible across
    numpy versions that share the PCG64 stream.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def digits_split(test_fraction: float = 0.25, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shared digits split: ``(x_train, y_train, x_test, y_test)``, NCHW float32."""
    x, y = load_digits()
    return train_test_split(x, y, test_fraction, seed)
