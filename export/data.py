"""The digits split the exporter, the demo and the export benchmark evaluate on.

It is the pruner's own split (``tinymcu.prune.data``), so "accuracy on the demo model's test
split" means the same held-out images whether the pruner, the exporter or the benchmark
reports it: the images a federated run never trained on.
"""

from __future__ import annotations

import numpy as np

#: share of digits held out for testing (the pruner's default)
TEST_FRACTION = 0.2


def digits_split(test_fraction: float = TEST_FRACTION, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``: NCHW float32 in [0, 1], int64 labels."""
    from tinymcu.prune.data import load, train_test_split

    ds = load("digits")
    train, test = train_test_split(len(ds.y), test_fraction, seed)
    return ds.x[train], ds.y[train], ds.x[test], ds.y[test]
