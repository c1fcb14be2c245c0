"""Fuzzing past the reader: seeded mutants of the shared models that ``check`` accepts run
through ``emulate`` and ``codegen`` and must end as the CLI's exit 0, 1 or 2 (never 3: no
unexpected exception, no VerificationError) within a time limit.

In-process through the Python API the commands call (seconds, not a process per case);
a few mutants also go through the real CLI to tie the two together.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "robustness"))
from mutants import load_models, mutate, run_case  # noqa: E402

DATA = Path(__file__).parent / "data"
#: small models, so an accepted mutant costs ~0.1-0.3 s through emulate + codegen
SMALL = ["hello_world_int8", "keras_flatten_plumbing_int8", "micro_speech_quantized",
         "kws_ref_model"]
ACCEPTED = 300
MAX_CASES = 4000


@pytest.mark.slow
def test_accepted_mutants_survive_emulate_and_codegen(tmp_path: Path) -> None:
    models = load_models([DATA / f"{n}.tflite" for n in SMALL])
    accepted, failures = 0, []
    for seed in range(MAX_CASES):
        case = run_case(mutate(models, np.random.default_rng(seed)), seed, tmp_path,
                        limit=20.0)
        failures += [(seed, f) for f in case.failures()]
        accepted += case.accepted
        if accepted >= ACCEPTED:
            break
    assert not failures, failures[:5]
    assert accepted >= ACCEPTED  # the fuzz reached the emulator and codegen this often


def _first_accepted(models: list[bytes], tmp_path: Path, start: int) -> tuple[int, bytes]:
    for seed in range(start, start + 500):
        data = mutate(models, np.random.default_rng(seed))
        if run_case(data, seed, tmp_path, deep=False).accepted:
            return seed, data
    raise AssertionError("no accepted mutant")


@pytest.mark.parametrize("start", [0, 1000])
def test_accepted_mutant_through_the_cli(tmp_path: Path, start: int) -> None:
    models = load_models([DATA / f"{n}.tflite" for n in SMALL])
    seed, data = _first_accepted(models, tmp_path, start)
    model = tmp_path / "mutant.tflite"
    model.write_bytes(data)
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    g = load_tflite(model)
    np.savez(tmp_path / "x.npz", *[np.zeros(g.tensors[i].shape, g.tensors[i].dtype)
                                   for i in g.inputs])
    for args in (["emulate", str(model), "--input", str(tmp_path / "x.npz")],
                 ["codegen", str(model), "--out", str(tmp_path / "c")]):
        r = subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode in (0, 1, 2), (seed, args[0], r.stderr)
        assert "Traceback" not in r.stderr and r.stderr.count("\n") <= 1
