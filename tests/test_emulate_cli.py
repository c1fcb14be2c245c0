"""`tinymcu emulate` from the command line: real input, TFLM verification, bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"


def tinymcu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("schedule", ["layer", "patch"])
def test_kws_sample_runs_bit_exact_with_tflm(tmp_path: Path, schedule: str) -> None:
    out = tmp_path / "y.npy"
    r = tinymcu("emulate", str(KWS), "--input", str(DATA / "kws_sample_input_int8.npy"),
                "--output", str(out), "--schedule", schedule, "--verify")
    assert r.returncode == 0, r.stderr
    assert "TFLM: bit-exact" in r.stdout and f"{schedule} schedule" in r.stdout
    y = np.load(out)
    assert y.shape == (1, 12) and y.dtype == np.int8
    assert int(np.argmax(y)) == 5  # "on", as the MLPerf Tiny reference says


@pytest.mark.parametrize("make,needle", [
    (lambda p: np.save(p, np.zeros((1, 49, 10, 2), np.int8)), "shape"),
    (lambda p: np.save(p, np.zeros((1, 49, 10, 1), np.float32)), "dtype"),
    (lambda p: p.write_bytes(b"not numpy"), "not a .npy"),
])
def test_bad_inputs_exit_2_and_write_nothing(tmp_path: Path, make, needle: str) -> None:
    bad = tmp_path / "x.npy"
    make(bad)
    r = tinymcu("emulate", str(KWS), "--input", str(bad), "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 2 and needle in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "y.npy").exists()
