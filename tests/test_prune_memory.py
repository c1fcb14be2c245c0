"""Client memory is measured from torch's allocator events, not computed from sizes."""

import numpy as np
import torch

from tinymcu.prune import local, memory, zoo


def test_measured_peak_sees_a_transient_allocation():
    with memory.measure(resident=1000) as m:
        a = torch.zeros(250_000)  # 1 MB, freed before the block ends
        del a
        b = torch.zeros(10)
    assert 1_000_000 <= m.growth < 1_100_000 and m.peak == m.growth + 1000
    assert b.numel() == 10


def test_training_peak_grows_with_the_batch():
    x = np.random.default_rng(0).random((256, 1, 28, 28), dtype=np.float32)
    y = np.arange(256) % 10
    peaks = []
    for batch in (8, 128):
        model = zoo.build("small_cnn")
        with memory.measure() as m:
            local.train(model, x, y, None, epochs=1, lr=0.01, batch=batch, seed=0,
                        device=torch.device("cpu"))
        peaks.append(m.peak)
    assert 0 < peaks[0] < peaks[1]  # activations for backward scale with the batch
