"""Fixtures shared by several test modules."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

# The test command (and so CI) draws the same hypothesis examples on every run, so a red run
# reproduces from its log and a green one stays green; HYPOTHESIS_PROFILE=explore draws new
# examples each run, for hunting (a failure found there becomes an @example).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


@pytest.fixture(scope="session")
def keras_mobilenetv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras MobileNetV2-0.35 (10 classes) at 40×40, full-int8, seeded random weights:
    ZeroPadding + VALID stride-2 depthwise convs and residual ADDs, as Keras converts them.
    Built through the patch benchmark's cached builder (TensorFlow conversion is slow)."""
    pytest.importorskip("tensorflow")
    import shutil
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "patch"))
    from patch_models import mobilenetv2_tflite

    path = tmp_path_factory.mktemp("keras_mbv2") / "mbv2.tflite"
    shutil.copy(mobilenetv2_tflite(0.35, 40, classes=10), path)
    return path
