"""The reference oracles: TFLM and TFLite BUILTIN_REF in child processes, arena measurement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinymcu.mcu_runtime import oracle

DATA = Path(__file__).parent / "data"
KWS = DATA / "kws_ref_model.tflite"
AD01 = DATA / "ad01_int8.tflite"
HELLO = DATA / "hello_world_int8.tflite"


def _kws_inputs(n: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return [[rng.integers(-128, 128, (1, 49, 10, 1), dtype=np.int8)] for _ in range(n)]


def test_importing_the_oracle_does_not_import_tensorflow():
    code = ("import sys, tinymcu.mcu_runtime.oracle; "
            "sys.exit(int('tensorflow' in sys.modules or 'tflite_micro' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_tflm_and_reference_kernels_agree_bit_for_bit_on_kws():
    sets = _kws_inputs(3)
    tflm = oracle.tflm_invoke_batch(KWS, sets)
    ref = oracle.ref_invoke_batch(KWS, sets)
    assert len(tflm) == len(ref) == 3
    for a, b in zip(tflm, ref, strict=True):
        assert len(a) == len(b) == 1
        assert a[0].dtype == np.int8 and a[0].shape == (1, 12)
        np.testing.assert_array_equal(a[0], b[0])
    # different inputs give different outputs: the batch really ran each set
    assert any(not np.array_equal(tflm[0][0], t[0]) for t in tflm[1:])


def test_single_invoke_matches_batch():
    sets = _kws_inputs(2)
    batch = oracle.tflm_invoke_batch(KWS, sets)
    np.testing.assert_array_equal(oracle.tflm_invoke(KWS, sets[1])[0], batch[1][0])


def test_a_segfault_in_tflm_becomes_an_oracle_error():
    # A zero-byte arena makes the TFLM wrapper segfault; the caller survives and learns why.
    with pytest.raises(oracle.OracleError, match="SIGSEGV"):
        oracle.tflm_invoke(KWS, _kws_inputs(1)[0], arena_size=0)


def test_a_too_small_arena_is_an_error_not_a_wrong_answer():
    with pytest.raises(oracle.OracleError):
        oracle.tflm_invoke(KWS, _kws_inputs(1)[0], arena_size=4000)


def test_allocation_report_is_parsed():
    rep = oracle.tflm_allocations(KWS)
    assert rep["total"] == rep["head"] + rep["tail"]
    assert rep["head"] > 0 and rep["tail"] > 0
    types = rep["types"]
    assert types["TfLiteEvalTensor data"]["count"] > 0
    assert types["NodeAndRegistration struct"]["count"] == 13  # KWS has 13 nodes
    assert sum(t["used"] for t in types.values()) <= rep["tail"]


def test_parse_allocations_rejects_text_without_a_report():
    with pytest.raises(oracle.OracleError):
        oracle.parse_allocations("nothing here")


@pytest.mark.parametrize("model", [KWS, HELLO])
def test_min_arena_is_the_boundary_between_failure_and_success(model):
    n = oracle.tflm_min_arena(model)
    assert n % oracle.ARENA_ALIGNMENT == 0
    assert oracle.tflm_runs(model, n)
    assert not oracle.tflm_runs(model, n - oracle.ARENA_ALIGNMENT)


def test_min_arena_can_exceed_the_recorded_total():
    # hello_world's FULLY_CONNECTED makes temporary allocations in Prepare that the
    # recording allocator does not count, so the recorded total is too small to run.
    total = oracle.tflm_allocations(HELLO)["total"]
    assert not oracle.tflm_runs(HELLO, total)
    assert oracle.tflm_min_arena(HELLO) > total
