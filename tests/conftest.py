"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def torch_mobilenetv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The zoo's PyTorch MobileNetV2-0.35 (10 classes) at 3×48×48, exported by ``tinymcu
    export``'s pipeline: its stride-2 ``padding=1`` convs become PAD + VALID conv.

    Session-scoped: the export takes tens of seconds on 2 cores, and the patch scheduler
    and PAD-folding tests read the same file.
    """
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    from tinymcu.export.pipeline import export_model

    root = tmp_path_factory.mktemp("torch_mbv2")
    calib = root / "calib.npy"
    rng = np.random.default_rng(0)
    np.save(calib, rng.standard_normal((16, 3, 48, 48)).astype(np.float32))
    result = export_model("patch_graphs:torch_mobilenetv2", str(calib), root / "out",
                          input_shape=(1, 3, 48, 48), tflm_samples=2)
    return result.tflite_path
