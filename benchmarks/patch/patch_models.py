"""Seeded random-weight MobileNetV2s (Keras, and PyTorch via ``tinymcu export``) → full-int8
.tflite, cached on disk.

The patch benchmark and tests need MobileNetV2 at sizes no shared model has. Weights are
random (seeded) because memory and exactness do not depend on what the weights learned;
the file is cached because TensorFlow conversion takes tens of seconds on 2 cores.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    """Where built models live: $TINYMCU_CACHE or <tmp>/tinymcu-cache."""
    root = os.environ.get("TINYMCU_CACHE") or os.path.join(tempfile.gettempdir(), "tinymcu-cache")
    path = Path(root) / "patch-models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def mobilenetv2_tflite(alpha: float, size: int, seed: int = 0, classes: int = 1000) -> Path:
    """Path of an int8 MobileNetV2 (width ``alpha``, ``size``² RGB input), built if missing.

    The classifier ends at the logits (no SOFTMAX): the TFLM Python interpreter aborts
    while loading the int8 SOFTMAX this converter emits, and the oracle must run the model.
    """
    path = cache_dir() / f"mobilenetv2_{alpha:g}_{size}_c{classes}_s{seed}_logits.tflite"
    if path.exists():
        return path
    import numpy as np
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.applications.MobileNetV2(alpha=alpha, input_shape=(size, size, 3),
                                              weights=None, classes=classes,
                                              classifier_activation=None)
    rng = np.random.default_rng(seed)

    def representative():
        for _ in range(4):
            yield [rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    _publish(path, conv.convert())
    return path


def _publish(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary name of this process's own, then rename: several
    processes (parallel test workers, benchmarks) may build the same model at once, and a
    reader must never see a half-written file."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def torch_mobilenetv2_tflite(size: int) -> Path:
    """Path of the zoo's PyTorch MobileNetV2-0.35 (1000 classes, seeded weights) at
    ``size``² exported by ``tinymcu export``'s pipeline, built if missing.

    Unlike the Keras model, PyTorch's stride-2 convs pad by 1 on every side, which TFLite's
    SAME cannot express at even sizes: the export carries explicit PAD ops, starting with
    the very first op, so this is the model that exercises PAD inside patch stages.
    """
    path = cache_dir() / f"torch_mobilenetv2_0.35_{size}_s0.tflite"
    if path.exists():
        return path
    import numpy as np

    from tinymcu.export.pipeline import export_model

    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "calib.npy"
        rng = np.random.default_rng(0)
        np.save(calib, rng.standard_normal((16, 3, size, size)).astype(np.float32))
        result = export_model("tinymcu.prune.zoo:mobilenetv2", str(calib), Path(tmp) / "out",
                              input_shape=(1, 3, size, size), tflm_samples=2)
        _publish(path, result.tflite_path.read_bytes())
    return path


if __name__ == "__main__":
    import sys

    for spec in sys.argv[1:]:
        a, s = spec.split("@")
        print(mobilenetv2_tflite(float(a), int(s)))
