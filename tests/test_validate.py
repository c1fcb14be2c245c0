"""`tinymcu validate`: real inputs through the firmware on QEMU, every output compared.

The slow tests run the shared models' real samples (the KWS sample, the two TFLM
person-detection images, ten streaming-wakeword feature windows quantized from float) on
qemu-mps2-an386 from one image each, reading the inputs over semihosting: every output must
equal the emulator's and TFLM's, and the report's numbers must be the ones measured. The
fast tests cover the data reader and bad input (one line, exit 2, nothing written).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinymcu.cli import main
from tinymcu.errors import TinymcuError, VerificationError
from tinymcu.firmware_templates.validate import _parse, load_samples, parse_batch
from tinymcu.mcu_runtime.check import load_graph

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"
PERSON = DATA / "person_detect.tflite"
SWW = DATA / "str_ww_ref_model.tflite"
VWW = DATA / "vww_96_int8.tflite"

needs_toolchain = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs arm-none-eabi-gcc and qemu-system-arm (installed in CI)")


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out, err = capsys.readouterr()
    return int(e.value.code or 0), out, err


def _bmp_as_int8(path: Path) -> np.ndarray:
    """The TFLM person-detection test images: pixel bytes as int8, top row first."""
    raw = path.read_bytes()
    start = int.from_bytes(raw[10:14], "little")
    rows = np.frombuffer(raw[start:start + 96 * 96], dtype=np.uint8).reshape(96, 96)[::-1]
    return rows.view(np.int8).reshape(96, 96, 1)


def test_samples_are_read_in_the_models_shape_and_quantized(tmp_path: Path) -> None:
    _, graph = load_graph(SWW, target="tinymcu")
    q = graph.tensors[graph.inputs[0]].quant
    s = load_samples(str(DATA / "sww_calibration_samples.npz"), graph, 4)
    specs = np.load(DATA / "sww_calibration_samples.npz")
    assert s.x.shape == (4, 1, 30, 1, 40)  # one batch-1 input per sample
    expected = np.clip(np.round(specs["specs"][:4] / float(q.scale[0]))
                       + int(q.zero_point[0]), -128, 127).astype(np.int8)
    assert np.array_equal(s.x.reshape(expected.shape), expected)
    assert s.labels is not None and s.labels.tolist() == specs["labels"][:4].astype(int).tolist()
    # int8 data is used as is; a leading batch-1 axis per sample is accepted
    _, kws = load_graph(KWS, target="tinymcu")
    x = np.load(DATA / "kws_sample_input_int8.npy")
    np.save(tmp_path / "k.npy", np.stack([x, x]))  # (2, 1, 49, 10, 1)
    k = load_samples(str(tmp_path / "k.npy"), kws, None)
    assert k.x.shape[0] == 2 and np.array_equal(k.x[1].reshape(-1), x.reshape(-1))
    assert k.labels is None


@pytest.mark.parametrize("make,match", [
    (lambda: np.zeros((3, 49, 11, 1), np.int8), "shape"),
    (lambda: np.zeros((3, 49, 10, 1), np.uint16), "dtype uint16"),
    (lambda: np.zeros((0, 49, 10, 1), np.int8), "no samples"),
])
def test_bad_data_is_one_line_exit_2(make, match: str, tmp_path: Path,  # noqa: ANN001
                                     capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "bad.npz", x=make())
    code, _, err = cli(["validate", str(KWS), "--data", str(tmp_path / "bad.npz"), "--out",
                        str(tmp_path / "v")], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("args,match", [
    (["--board", "nucleo-f412zg", "--data", "digits"], "give --port"),
    (["--board", "nucleo-f412zg", "--transport", "semihosting", "--data", "digits"],
     "use the console transport"),
    (["--data", str(DATA / "kws_sample_input_int8.npy"), "--samples", "2"], "has 1 samples"),
    (["--data", "nope.npz"], "no such file"),
    (["--data", "digits"], "shape"),
])
def test_bad_requests_are_one_line_exit_2(args: list[str], match: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(["validate", str(KWS), *args, "--out", str(tmp_path / "v")], capsys)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "v").exists()


def test_incomplete_or_failed_runs_are_errors() -> None:
    good = "TINYMCU_STATUS 0\nTINYMCU_TICKS 7\nTINYMCU_STACK 100\nTINYMCU_END 0\n"
    assert _parse(good, 1) == ([7], 100)
    with pytest.raises(TinymcuError, match="1 of 2 samples"):
        _parse(good, 2)
    with pytest.raises(TinymcuError, match="returned 3 on sample 0"):
        _parse(good.replace("STATUS 0", "STATUS 3"), 1)
    with pytest.raises(TinymcuError, match="file I/O failed"):
        _parse("TINYMCU_IO_ERROR 1\n", 1)
    sample = "TINYMCU_STATUS 0\nTINYMCU_TICKS {t}\nTINYMCU_OUTPUT_BYTES 2\n{h}\n"
    batch = ("noise\n" + sample.format(t=5, h="ff01") + sample.format(t=6, h="7f80")
             + "TINYMCU_STACK 96\nTINYMCU_SAMPLES 2\nTINYMCU_END 0\n")
    outputs, ticks, stack = parse_batch(batch, 2, 2)
    assert outputs.tolist() == [[-1, 1], [127, -128]] and ticks == [5, 6] and stack == 96
    with pytest.raises(TinymcuError, match="1 of 2 samples"):
        parse_batch(sample.format(t=5, h="ff01") + "TINYMCU_STACK 9\nTINYMCU_END 0\n", 2, 2)
    with pytest.raises(TinymcuError, match="1 output bytes"):
        parse_batch(batch.replace("7f80", "7f"), 2, 2)


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("model,data,samples,board", [
    (KWS, "kws", None, "qemu-mps2-an386"), (PERSON, "person", None, "qemu-mps2-an386"),
    # MLPerf VWW on the same two images, grey replicated to its RGB input
    (VWW, "vww", None, "qemu-mps2-an386"),
    # all 45 real wakeword windows on the Cortex-M0 (its UART console, 16 KiB RAM)
    (SWW, str(DATA / "sww_calibration_samples.npz"), None, "qemu-microbit"),
])
def test_real_samples_on_qemu_agree_100_percent(model: Path, data: str, samples: int | None,
                                                board: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    if data == "kws":
        data = str(tmp_path / "kws.npz")
        np.savez(data, x=np.load(DATA / "kws_sample_input_int8.npy"), y=np.array([5]))
    elif data in ("person", "vww"):
        images = np.stack([_bmp_as_int8(DATA / f) for f in ("person.bmp", "no_person.bmp")])
        data = str(tmp_path / f"{data}.npz")
        np.savez(data, x=images if model == PERSON else np.repeat(images, 3, axis=3),
                 y=np.array([1, 0]))
    out = tmp_path / "val"
    args = ["validate", str(model), "--board", board, "--data", data, "--out", str(out)]
    code, text, err = cli(args + (["--samples", str(samples)] if samples else []), capsys)
    assert code == 0, err
    report = json.loads((out / "validate.json").read_text())
    n = report["samples"]
    z = np.load(data)
    labels = (z["y"] if "y" in z.files else z["labels"])[:n].astype(int)
    assert n == (samples or len(labels))
    assert report["emulator_agreement"] == report["tflm_agreement"] == 1.0
    assert report["emulator_max_abs_diff"] == report["tflm_max_abs_diff"] == 0
    assert "bit-exact vs TFLM | 100.0 %" in (out / "validate.md").read_text()
    outputs = np.load(out / "outputs.npy")
    assert outputs.shape[0] == n
    top1 = np.argmax(outputs, axis=1)
    assert report["top1_accuracy_labels"] == float(np.mean(top1 == labels))
    if model != SWW:  # the KWS and person samples are classified right
        assert top1.tolist() == labels.tolist()
    # ticks are measured per inference, deterministic under -icount
    assert 0 < report["ticks_per_inference_min"] <= report["ticks_per_inference_max"]
    ns = {"qemu-mps2-an386": 40, "qemu-microbit": 62.5}[board]  # instructions per tick
    assert report["instructions_per_inference_mean"] == ns * report["ticks_per_inference_mean"]
    assert 0 < report["stack_used_bytes"] <= report["stack_reserved_bytes"]
    assert (out / "firmware" / "app.elf").is_file()


def _three_output_model(path: Path) -> Path:
    """One int8 input, three outputs written at different steps (ADD, MUL, SUB)."""
    from tflite_build import Node, Tensor, write

    rng = np.random.default_rng(7)

    def q() -> tuple[float, int]:
        return float(rng.uniform(0.01, 0.2)), int(rng.integers(-40, 40))

    c = Tensor((8,), quant=q(), data=rng.integers(-128, 128, 8).astype(np.int8))
    tensors = [Tensor((1, 4, 4, 8), quant=q()), c, Tensor((1, 4, 4, 8), quant=q()),
               Tensor((1, 4, 4, 8), quant=q()), Tensor((1, 4, 4, 8), quant=q())]
    ops = [Node("ADD", [0, 1], [2]), Node("MUL", [2, 1], [3]), Node("SUB", [3, 0], [4])]
    return write(path, tensors, ops, [0], [2, 4, 3])


@pytest.mark.slow
@needs_toolchain
@pytest.mark.parametrize("transport", ["semihosting", "console"])
def test_every_output_of_a_multi_output_model_is_validated(transport: str,
                                                           tmp_path: Path) -> None:
    """All three outputs of each sample come back from QEMU (file I/O or the console) and
    equal the emulator and TFLM; one corrupted byte of the last output is caught."""
    from tinymcu.firmware_templates.validate import validate_model

    model = _three_output_model(tmp_path / "three.tflite")
    x = np.random.default_rng(8).integers(-128, 128, (40, 1, 4, 4, 8)).astype(np.int8)
    np.savez(tmp_path / "x.npz", x=x)
    report = validate_model(model, "qemu-mps2-an386", str(tmp_path / "x.npz"),
                            tmp_path / "v", transport=transport)
    report.verify()
    assert report.output_sizes == (128, 128, 128)
    assert report.outputs.shape == (40, 384)
    d = report.to_dict()
    assert d["outputs"] == 3 and d["tflm_agreement"] == d["emulator_agreement"] == 1.0
    report.emulator = report.emulator.copy()
    report.emulator[3, 300] ^= 1
    with pytest.raises(VerificationError, match="1 of 40 outputs differ from emulator"):
        report.verify()


@pytest.mark.slow
@needs_toolchain
def test_a_disagreeing_output_fails_the_validation(tmp_path: Path) -> None:
    from tinymcu.firmware_templates.validate import validate_model

    report = validate_model(SWW, "qemu-mps2-an386", str(DATA / "sww_calibration_samples.npz"),
                            tmp_path / "v", samples=2)
    report.verify()
    report.tflm = report.tflm.copy()
    report.tflm[1, 0] += 1
    with pytest.raises(VerificationError, match="1 of 2 outputs differ from TFLM"):
        report.verify()


@pytest.mark.slow
@needs_toolchain
def test_digits_with_a_float_model_on_the_cortex_m0(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A small CNN for the 8x8 digits, converted float and int8: validate on the micro:bit
    (Cortex-M0) reads digits (NCHW, float) in the model's NHWC layout, and the int8 firmware's
    top-1 agrees with the float model's on nearly every sample."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf

    from tinymcu.prune.data import load

    keras.utils.set_random_seed(0)
    ds = load("digits")
    x = ds.x.transpose(0, 2, 3, 1)[:400]
    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(10)])
    m.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, ds.y[:400], epochs=15, verbose=0)
    (tmp_path / "float.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in x[:64])
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    (tmp_path / "int8.tflite").write_bytes(conv.convert())
    out = tmp_path / "val"
    code, _, err = cli(["validate", str(tmp_path / "int8.tflite"), "--board", "qemu-microbit",
                        "--data", "digits", "--samples", "20", "--float-model",
                        str(tmp_path / "float.tflite"), "--out", str(out)], capsys)
    assert code == 0, err
    report = json.loads((out / "validate.json").read_text())
    assert report["emulator_agreement"] == report["tflm_agreement"] == 1.0
    assert report["top1_agreement_float"] >= 0.9
    assert report["top1_accuracy_labels"] >= 0.8
    assert report["qemu_machine"] == "microbit"


@pytest.mark.slow
@needs_toolchain
def test_console_transport_batches_on_the_uart_boards(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The real-board path (inputs compiled in per batch, outputs read from the console UART)
    run on QEMU's STM32F405: 5 KWS inputs in images of 2, 2 and 1, all bit-exact."""
    rng = np.random.default_rng(1)
    x = np.load(DATA / "kws_sample_input_int8.npy")
    np.save(tmp_path / "kws5.npy", np.concatenate(
        [x] + [rng.integers(-128, 128, x.shape).astype(np.int8) for _ in range(4)]))
    out = tmp_path / "val"
    code, _, err = cli(["validate", str(KWS), "--board", "qemu-netduinoplus2", "--transport",
                        "console", "--batch", "2", "--data", str(tmp_path / "kws5.npy"),
                        "--out", str(out)], capsys)
    assert code == 0, err
    report = json.loads((out / "validate.json").read_text())
    assert report["transport"] == "console" and report["samples"] == 5
    assert report["emulator_agreement"] == report["tflm_agreement"] == 1.0
    assert np.argmax(np.load(out / "outputs.npy")[0]) == 5  # the real sample: "on"
    assert "#define TINYMCU_SAMPLES 2u" in (out / "firmware" / "main.c").read_text()


@pytest.mark.slow
@needs_toolchain
def test_real_board_validation_flashes_and_reads_the_console(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On a real board each batch image is flashed, then its console read: here the flash
    tool is a stand-in and the console a silent pseudo-terminal, so the run stops at the
    console's deadline with one line (exit 2) and writes nothing."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "openocd").write_text(f'#!/bin/sh\necho "$@" >> "{bin_dir}/calls"\n')
    (bin_dir / "openocd").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    _, slave = os.openpty()
    np.savez(tmp_path / "kws.npz", x=np.load(DATA / "kws_sample_input_int8.npy"))
    code, _, err = cli(["validate", str(KWS), "--board", "nucleo-f412zg", "--port",
                        os.ttyname(slave), "--probe", "openocd", "--timeout", "1",
                        "--data", str(tmp_path / "kws.npz"), "--out", str(tmp_path / "v")],
                       capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "no complete report within 1 s" in err
    assert "verify reset exit" in (bin_dir / "calls").read_text()
    assert not (tmp_path / "v").exists()
