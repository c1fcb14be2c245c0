"""Bit-exactness bugs found on real models, pinned against the tflite_micro interpreter.

Each case runs many seeded random inputs through TFLM in one child process (batched) and
compares every output element with the emulator and, for the C runtime, with a compiled
host build of the generated code. The single-op models are written with
``tflite_build`` so the quantization is exactly the corner case (the converter would choose
its own).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bench_script import load_benchmark
from tflite_build import fc_model, mean_model, transpose_mean_mean_model

from tinymcu.mcu_runtime import ops as kernels
from tinymcu.mcu_runtime import oracle
from tinymcu.mcu_runtime.emulator import emulate, unshared_plan
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.ops.fully_connected import multipliers
from tinymcu.mcu_runtime.pipeline import load_graph
from tinymcu.mcu_runtime.quant import multiply_by_quantized_multiplier
from tinymcu.mcu_runtime.schedule import layer_schedule

DATA = Path(__file__).parent / "data"
AD01 = DATA / "ad01_int8.tflite"


def random_sets(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, graph.tensors[t].shape).astype(np.int8)
             for t in graph.inputs] for _ in range(n)]


def mismatches(path: Path, sets: list[list[np.ndarray]]) -> list[tuple[int, int]]:
    """(input index, elements differing) for every input where the emulator is not TFLM."""
    _, graph = load_graph(path)
    p = unshared_plan(graph, layer_schedule(graph))
    ref = oracle.tflm_invoke_batch(path, sets, arena_size=1 << 22)
    bad = []
    for k, (inputs, expected) in enumerate(zip(sets, ref, strict=True)):
        ours = emulate(graph, p, inputs, seed=k).outputs
        n = sum(int((a != b.reshape(a.shape)).sum()) for a, b in zip(ours, expected, strict=True))
        if n:
            bad.append((k, n))
    return bad


# -- FULLY_CONNECTED ----------------------------------------------------------------------------

def test_ad01_reproducers_and_3000_random_inputs_equal_tflm() -> None:
    _, graph = load_graph(AD01)
    repro = [[np.load(DATA / f"ad01_fc_lsb_x{k}.npy").reshape(1, 640)] for k in (137, 178)]
    assert mismatches(AD01, repro + random_sets(graph, 3000, 9)) == []


def test_fc_multiplier_takes_the_scale_product_in_double() -> None:
    """The reproducer's last layer: accumulator -88,337. TFLM's multiplier comes from
    double(s_in)·double(s_w)/double(s_out) (1,462,485,049, shift -9); the float32 product
    gave 1,462,485,078, whose double-rounded result is one LSB lower."""
    _, graph = load_graph(AD01)
    op = graph.ops[-1]
    mult, shift = multipliers(op, graph, graph.tensors[op.inputs[1]].shape[0])
    assert (int(mult[0]), int(shift[0])) == (1462485049, -9)
    assert int(multiply_by_quantized_multiplier(-88337, 1462485049, -9)) == -117
    assert int(multiply_by_quantized_multiplier(-88337, 1462485078, -9)) == -118


@pytest.mark.parametrize("seed", range(6))
def test_random_fc_layers_equal_tflm(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(8, 300)), int(rng.integers(4, 200))
    q_in = (float(rng.uniform(0.005, 0.1)), int(rng.integers(-128, 128)))
    q_out = (float(rng.uniform(0.02, 0.5)), int(rng.integers(-60, 60)))
    path = fc_model(tmp_path / "fc.tflite", rng, n_in, n_out, q_in, q_out,
                    float(rng.uniform(0.001, 0.02)), "RELU" if seed % 2 else "NONE")
    _, graph = load_graph(path)
    assert mismatches(path, random_sets(graph, 300, seed)) == []


# -- MEAN ---------------------------------------------------------------------------------------

MEAN_CASES = [((1, 7, 7, 32), (1, 2)), ((1, 7, 7, 20), (2, 1)), ((1, 5, 6, 8), (1,)),
              ((1, 5, 6, 8), (3,)), ((1, 4, 4, 8), (1, 2, 3)), ((1, 10, 8), (-1,)),
              ((2, 3, 5, 4), (0, 2))]


@pytest.mark.parametrize("same_quant", [True, False], ids=["same-quant", "rescaled"])
@pytest.mark.parametrize("keep_dims", [False, True], ids=["drop", "keep"])
@pytest.mark.parametrize("shape,axes", MEAN_CASES)
def test_mean_equals_tflm(shape: tuple[int, ...], axes: tuple[int, ...], keep_dims: bool,
                          same_quant: bool, tmp_path: Path) -> None:
    rng = np.random.default_rng(len(shape) * 100 + sum(axes) + keep_dims)
    q_in = (float(rng.uniform(0.01, 0.2)), int(rng.integers(-20, 20)))
    q_out = q_in if same_quant else (q_in[0] * float(rng.uniform(0.3, 1.5)),
                                     int(rng.integers(-20, 20)))
    path = mean_model(tmp_path / "mean.tflite", shape, axes, keep_dims, q_in, q_out)
    _, graph = load_graph(path)
    assert mismatches(path, random_sets(graph, 100, 1)) == []


def test_transpose_mean_mean_equals_tflm(tmp_path: Path) -> None:
    path = transpose_mean_mean_model(tmp_path / "tmm.tflite", (1, 7, 7, 40), (0.05, -3))
    _, graph = load_graph(path)
    assert [op.kind for op in graph.ops] == ["TRANSPOSE", "MEAN", "MEAN"]
    assert mismatches(path, random_sets(graph, 200, 2)) == []


def test_same_quant_mean_is_not_the_truncating_sum_over_count() -> None:
    """Mean of seven values summing to -53 on one quantization: -7.57 rounds to -8 on
    TFLM's rescaling path; the old sum/count formula truncated it to -7."""
    q = (0.1, 0)
    from tinymcu.mcu_runtime.ir import Op, Quant
    from tinymcu.mcu_runtime.ir import Tensor as IrTensor
    quant = Quant(np.array([q[0]], np.float32), np.array([q[1]]))
    g = Graph([IrTensor(0, "x", (1, 7), "int8", quant), IrTensor(1, "y", (1,), "int8", quant)],
              [Op(0, "MEAN", (0,), (1,), {"axis": [1], "keep_dims": False})], [0], [1])
    x = np.array([[-53, 0, 0, 0, 0, 0, 0]], np.int8)
    assert int(kernels.get("MEAN").run(g.ops[0], g, [x])[0][0]) == -8


# -- the C runtime on the same corner cases -----------------------------------------------------

def test_c_mean_and_fc_equal_tflm(tmp_path: Path) -> None:
    from test_codegen import CC, build, run_c

    from tinymcu.mcu_runtime.codegen import codegen_model

    if CC is None:
        pytest.skip("needs a host C compiler")
    cases = {"mean_same": mean_model(tmp_path / "mean_same.tflite", (1, 7, 7, 32), (1, 2),
                                     False, (0.07, 5), (0.07, 5)),
             "mean_keep": mean_model(tmp_path / "mean_keep.tflite", (1, 7, 7, 24), (1, 2),
                                     True, (0.05, -2), (0.03, 7)),
             "ad01": AD01}
    for name, path in cases.items():
        r = codegen_model(path, tmp_path / name)
        sets = random_sets(r.graph, 300, 3)
        if name == "ad01":
            sets += [[np.load(DATA / f"ad01_fc_lsb_x{k}.npy").reshape(1, 640)] for k in (137, 178)]
        ref = oracle.tflm_invoke_batch(path, sets, arena_size=1 << 22)
        out_shape = r.graph.tensors[r.graph.outputs[0]].shape
        ours = run_c(build(r.files[0].parent), [s[0] for s in sets], out_shape)
        for k, (y, t) in enumerate(zip(ours, ref, strict=True)):
            np.testing.assert_array_equal(y, t[0].reshape(y.shape), err_msg=f"{name} input {k}")


# -- emulate --verify: TFLM's arena and its failures ------------------------------------------

def tinymcu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinymcu", *args], capture_output=True,
                          text=True, timeout=300)


def test_verify_sizes_tflm_arena_beyond_ten_times_the_file(tmp_path: Path) -> None:
    """A 1.5 MB activation in a file of a few hundred bytes: the wrapper's default arena
    (10 × file) and a fixed 1 MiB both fail; our prediction sizes it."""
    path = mean_model(tmp_path / "big.tflite", (1, 256, 256, 24), (1, 2), True,
                      (0.05, 0), (0.02, 1))
    assert path.stat().st_size * 10 < 16 << 10
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).integers(-128, 128, (1, 256, 256, 24)).astype(np.int8))
    r = tinymcu("emulate", str(path), "--input", str(x), "--verify")
    assert r.returncode == 0, r.stderr
    assert "TFLM: bit-exact" in r.stdout


def test_an_oracle_failure_is_reported_as_such_not_as_a_mismatch(tmp_path: Path) -> None:
    """TFLM refuses an FC whose bias scale is far from input·weight scale (its
    GetQuantizedConvolutionMultipler check); our runtime uses the int32 bias as stored. The
    emulator still answers, and --verify says TFLM did not run (exit 2), never 'MISMATCH'."""
    path = fc_model(tmp_path / "fc.tflite", np.random.default_rng(0), 16, 8, (0.05, 0),
                    (0.1, 0), 0.01, bias_scale=1.0)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).integers(-128, 128, (1, 16)).astype(np.int8))
    r = tinymcu("emulate", str(path), "--input", str(x), "--verify")
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "MISMATCH" not in r.stdout and "output 0: shape [1, 8]" in r.stdout
    assert r.stderr.startswith("error: TFLM could not run the model") and r.stderr.count("\n") == 1


# -- the sweep script (benchmarks/exactness/run.py --quick) ----------------------------------

@pytest.mark.slow
def test_quick_exactness_sweep_on_the_test_models(tmp_path: Path) -> None:
    """50 seeded inputs (+ real samples) per model in tests/data: emulator == TFLM and
    C == emulator on every model the reader accepts; rejected ones are named with a reason."""
    run = load_benchmark("exactness", "exactness_run")
    out = tmp_path / "exactness.md"
    assert run.main(["--quick", "--models", str(DATA), "--out", str(out)]) == 0
    text = out.read_text()
    rows = [line.split("|")[1:-1] for line in text.splitlines()
            if line.startswith("| data/")]
    swept = {r[0].strip() for r in rows if len(r) == 9}
    assert {"data/ad01_int8", "data/kws_ref_model", "data/hello_world_int8"} <= swept
    for r in rows:
        if len(r) == 9:
            inputs = int(r[1].split()[0])
            assert inputs >= 50 and r[2].strip() == "0", r
            assert r[4].strip() == "—" or (int(r[4]) == inputs and r[5].strip() == "0"), r
    # the audio front end (Signal custom ops, int16 input, internal state) runs as a sequence
    assert "data/audio_preprocessor_int8" in swept


SHARED_REALWORLD = Path(__file__).parents[2] / "shared" / "models" / "realworld"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_REALWORLD.is_dir(), reason="../shared/models not present")
def test_quick_exactness_sweep_on_the_third_party_models(tmp_path: Path) -> None:
    """The same quick sweep (50 inputs per model) over ../shared/models/realworld: every
    model the reader accepts is bit-exact on both sides; the rest are named with a reason."""
    run = load_benchmark("exactness", "exactness_run_realworld")
    out = tmp_path / "exactness.md"
    assert run.main(["--quick", "--models", str(SHARED_REALWORLD), "--out", str(out)]) == 0
    results, rejected, pending = run.parse_results(out.read_text())
    assert not pending and len(results) + len(rejected) == len(
        list(SHARED_REALWORLD.glob("*.tflite")))
    assert all(r.inputs >= 50 and r.ok and r.c_inputs == r.inputs for r in results), results
    assert all(why for _, why in rejected)


def test_sweep_results_merge_round_trip(tmp_path: Path) -> None:
    """Runs on disjoint model sets (one per core) merge into one table: every swept row,
    rejection and still-pending model survives render → parse → render."""
    run = load_benchmark("exactness", "exactness_run_merge")
    a = [run.Result("m/a", 1000, 0, 0, 0.0, 1000, 0, 0.0, "", "", 12.0),
         run.Result("m/b", 1010, 10, 3, 1.0, 0, 0, 0.0, "op 2 X is not supported", "", 30.0)]
    b = [run.Result("m/c", 1000, 0, 0, 0.0, 0, 0, 0.0, "", "TFLM could not run it: boom", 5.0)]
    models = tmp_path / "models"
    fa, fb, out = tmp_path / "a.md", tmp_path / "b.md", tmp_path / "out.md"
    fa.write_text(run.render(a, [("m/r", "op 0 is SVDF")], 1000, 0, models, ["m/c", "m/d"]))
    fb.write_text(run.render(b, [], 1000, 0, models))
    assert run.main(["--merge", str(fa), str(fb), "--out", str(out)]) == 1  # m/b mismatches
    results, rejected, pending = run.parse_results(out.read_text())
    assert sorted(results, key=lambda r: r.model) == sorted(a + b, key=lambda r: r.model)
    assert rejected == [("m/r", "op 0 is SVDF")] and pending == ["m/d"]
    # a later run that sweeps m/r (its op landed) replaces the older rejection
    r = run.Result("m/r", 1000, 0, 0, 0.0, 1000, 0, 0.0, "", "", 3.0)
    fr = tmp_path / "r.md"
    fr.write_text(run.render([r], [], 1000, 0, models))
    assert run.main(["--merge", str(out), str(fr), "--out", str(out)]) == 1
    results, rejected, _ = run.parse_results(out.read_text())
    assert r in results and rejected == []
