"""Ops TFLM has no kernel for, checked bit for bit against TFLite's BUILTIN_REF interpreter.

RELU_N1_TO_1 (``tf.clip_by_value(x, -1, 1)``) is accepted by the reader and runs in the
emulator and the C runtime, but TFLM cannot run it, so TFLite's reference kernels are the
oracle. The model is converted, and BUILTIN_REF run, in a child process (TensorFlow is
imported once, outside pytest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

pytest.importorskip("tensorflow")

N_INPUTS = 300

CHILD = r"""
import sys
import numpy as np
import keras
import tensorflow as tf
from keras import layers as L

out = sys.argv[1]
keras.utils.set_random_seed(3)
x = keras.Input((5, 6, 3))
# after a concatenation (no fused activation) the clip stays a standalone RELU_N1_TO_1
c = L.Concatenate()([L.Conv2D(2, 1)(x), L.Conv2D(3, 3, padding="same")(x)])
y = L.Conv2D(2, 1)(L.Lambda(lambda v: tf.clip_by_value(v, -1.0, 1.0))(c))
conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(x, y))
rng = np.random.default_rng(0)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = lambda: ([rng.normal(0, 2, (1, 5, 6, 3)).astype(np.float32)]
                                       for _ in range(32))
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
blob = conv.convert()
open(out + "/relu1.tflite", "wb").write(blob)
ref = tf.lite.Interpreter(model_content=blob,
    experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
ref.allocate_tensors()
d_in, d_out = ref.get_input_details()[0], ref.get_output_details()[0]
xs = np.random.default_rng(11).integers(-128, 128, (int(sys.argv[2]), *d_in["shape"]),
                                        dtype=np.int8)
ys = []
for xi in xs:
    ref.set_tensor(d_in["index"], xi)
    ref.invoke()
    ys.append(ref.get_tensor(d_out["index"]).copy())
np.savez(out + "/relu1.npz", x=xs, y=np.stack(ys))
"""


@pytest.mark.slow
def test_relu_n1_to_1_bit_exact_with_builtin_ref(tmp_path: Path) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(N_INPUTS)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    graph = load_tflite(tmp_path / "relu1.tflite")
    assert "RELU_N1_TO_1" in {op.kind for op in graph.ops}
    data = np.load(tmp_path / "relu1.npz")
    p = plan(graph, layer_schedule(graph))
    for k, (x, y) in enumerate(zip(data["x"], data["y"], strict=True)):
        ours = emulate(graph, p, [x], seed=k).outputs[0]
        np.testing.assert_array_equal(ours, y.reshape(ours.shape), err_msg=f"input {k}")
