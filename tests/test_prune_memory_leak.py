"""Measuring a client round must not leak: a Ray actor serves hundreds of them."""

import numpy as np
import torch

from tinymcu.prune import local, memory, zoo


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_repeated_measurements_do_not_grow_the_process():
    x = np.random.default_rng(0).random((400, 1, 28, 28), dtype=np.float32)
    y = np.arange(400) % 10

    def one_round() -> int:
        model = zoo.build("small_cnn")
        with memory.measure() as m:
            local.train(model, x, y, None, epochs=1, lr=0.01, batch=32, seed=0,
                        device=torch.device("cpu"))
        return m.peak

    for _ in range(5):  # warm-up: allocator pools, lazy imports
        one_round()
    before = _rss_mb()
    peaks = [one_round() for _ in range(25)]
    grown = _rss_mb() - before
    assert min(peaks) > 0
    assert grown < 40, f"process grew {grown:.0f} MB over 25 measured rounds"
