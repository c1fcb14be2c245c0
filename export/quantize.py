"""Float TF graph → fully-int8 .tflite with TensorFlow's own converter.

Full integer quantization (``TFLITE_BUILTINS_INT8``, int8 input and output) is what TFLM's
int8 kernels and our emulator run; per-channel symmetric weights are the converter's default
and keep an exactly-zero float weight exactly zero in int8 (zero point 0), which is what makes
pruned sparsity survive quantization. The representative dataset is the calibration data in
the TF layout (NHWC), one sample per step, as the converter expects for a batch-1 graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_to_tf import TfModel, input_to_tf_layout
from tinymcu.export.quiet import quiet_fd


def quantize_int8(model: TfModel, calib_nchw: np.ndarray,
                  on_sample: Callable[[int], None] | None = None) -> bytes:
    """Convert to a fully-int8 flatbuffer; ``on_sample(i)`` is called per calibration sample."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for i, sample in enumerate(calib_nchw):
            if on_sample is not None:
                on_sample(i)
            yield [input_to_tf_layout(sample[None])]

    converter = tf.lite.TFLiteConverter.from_concrete_functions([model.concrete], model.module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    try:
        with quiet_fd(2):
            return bytes(converter.convert())
    except Exception as e:  # the converter raises ConverterError and others
        lines = [ln for ln in str(e).splitlines() if "error" in ln.lower()] or [str(e)]
        raise TinymcuError(f"TFLite int8 conversion failed: {lines[0].strip()[:300]}") from None

