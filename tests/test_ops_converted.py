"""The new ops as the TFLite converter writes them (full-int8 Keras models with
Conv2DTranspose skip connections, attention matmuls, splits, strided slices, gathers,
depth-to-space): emulator == TFLM on 200 seeded inputs, ``tinymcu codegen`` + host build ==
emulator, TFLM arena model == TFLM's report.

The models are converted in a child process (TensorFlow stays out of the test process).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from op_check import check_model, random_inputs

from tinymcu import cli
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.tflite_reader import load_tflite

#: model → the op kinds its converted graph must contain
MODELS = {
    "unet": {"TRANSPOSE_CONV", "CONV_2D", "CONCATENATION"},
    "attention": {"BATCH_MATMUL", "SOFTMAX"},
    "slicing": {"SPLIT", "STRIDED_SLICE", "GATHER", "DEPTH_TO_SPACE"},
}


def _keras_models() -> dict:
    import keras
    import tensorflow as tf
    from keras import layers as L

    def unet(x):
        a = L.Conv2D(4, 3, padding="same", activation="relu")(x)
        b = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(a)
        u = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(b)
        return L.Conv2D(2, 1)(L.Concatenate()([u, a]))

    def attention(x):
        q, k, v = L.Dense(16)(x), L.Dense(16)(x), L.Dense(16)(x)
        scores = L.Lambda(lambda t: tf.matmul(t[0], t[1], transpose_b=True))([q, k])
        attn = L.Softmax()(scores)
        return L.Dense(8)(L.Lambda(lambda t: tf.matmul(t[0], t[1]))([attn, v]))

    def slicing(x):
        a, b = L.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)
        s = L.Lambda(lambda t: t[:, 1:7:2, 7:1:-2, :])(L.Conv2D(4, 1)(a))
        g = L.Lambda(lambda t: tf.gather(t, [3, 0, 1, 1], axis=-1))(L.Conv2D(4, 1)(b))
        d = L.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(L.Conv2D(8, 1)(s))
        return L.Concatenate()([L.Conv2D(4, 1)(d), g[:, :6, :6, :]])

    shapes = {"unet": (8, 8, 3), "attention": (6, 8), "slicing": (8, 8, 4)}
    bodies = {"unet": unet, "attention": attention, "slicing": slicing}
    out = {}
    for name, shape in shapes.items():
        x = keras.Input(shape, batch_size=1)
        out[name] = (keras.Model(x, bodies[name](x)), (1, *shape))
    return out


def build(out_dir: Path) -> None:
    """Child process: convert every model to full int8 (int8 input and output)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(0)
    for name, (model, shape) in _keras_models().items():
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda shape=shape: (
            [rng.normal(0, 1, shape).astype(np.float32)] for _ in range(32))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        (out_dir / f"{name}.tflite").write_bytes(conv.convert())


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_converted_model_bit_exact_with_tflm(converted: Path, name: str,
                                             tmp_path: Path) -> None:
    path = converted / f"{name}.tflite"
    graph = check_model(path, tmp_path)
    kinds = {op.kind for op in graph.ops}
    assert MODELS[name] <= kinds, f"{name}: converter wrote {sorted(kinds)}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_codegen_cli_build_equals_the_emulator(converted: Path, name: str,
                                               tmp_path: Path) -> None:
    """``tinymcu codegen MODEL --out DIR`` (its own schedule and plan) built on the host."""
    from op_check import run_c_dir

    from tinymcu.mcu_runtime.pipeline import load_graph, plan_and_pick

    path = converted / f"{name}.tflite"
    out = tmp_path / "gen"
    with pytest.raises(SystemExit) as e:
        cli.main(["codegen", str(path), "--out", str(out)])
    assert e.value.code in (0, None)
    _, graph = load_graph(path, target="tinymcu", fuse=False)
    chosen = plan_and_pick(graph, "layer", 256 * 1024)
    sets = random_inputs(load_tflite(path), 50, seed=9)
    got = run_c_dir(out, [s[0] for s in sets], graph.tensors[graph.outputs[0]])
    for k, (y, s) in enumerate(zip(got, sets, strict=True)):
        np.testing.assert_array_equal(y, emulate(graph, chosen, s).outputs[0].reshape(y.shape),
                                      err_msg=f"{name}: input {k}")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None
                    or shutil.which("qemu-system-arm") is None,
                    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_firmware_runs_bit_exact_on_qemu(converted: Path, name: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``tinymcu firmware --run`` on the Cortex-M4 QEMU board equals the emulator."""
    with pytest.raises(SystemExit) as e:
        cli.main(["firmware", str(converted / f"{name}.tflite"), "--board", "qemu-mps2-an386",
                  "--out", str(tmp_path / "fw"), "--run"])
    assert e.value.code in (0, None)
    assert "emulator: bit-exact" in capsys.readouterr().out


if __name__ == "__main__":
    build(Path(sys.argv[1]))
