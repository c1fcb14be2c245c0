"""One check for a small op model: emulator == TFLM on many seeded inputs, generated C ==
emulator (host gcc, junk-filled arena), and the TFLM arena prediction == TFLM's own report.

Used by the op-coverage tests (``test_ops_*.py``); each op model is built directly as a
flatbuffer with ``tflite_build`` so the test picks the shapes, options and quantization.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from tinymcu.mcu_runtime import oracle, tflm_arena
from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph, Tensor
from tinymcu.mcu_runtime.planner import Plan, plan
from tinymcu.mcu_runtime.schedule import layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

#: seeded random input sets per model (the issue asks for at least 200 per kernel test)
N_INPUTS = 200


def random_inputs(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)

    def draw(t: Tensor) -> np.ndarray:
        lo, hi = (-32768, 32768) if t.dtype == "int16" else (-128, 128)
        return rng.integers(lo, hi, t.shape).astype(t.dtype)

    return [[draw(graph.tensors[t]) for t in graph.inputs] for _ in range(n)]


def check_model(path: Path, tmp: Path, n: int = N_INPUTS, seed: int = 0, c: bool = True,
                arena: bool | None = None, reference: str = "tflm",
                mask: np.ndarray | None = None,
                sets: list[list[np.ndarray]] | None = None) -> Graph:
    """Assert the three agreements for the model at ``path``; return its graph.

    ``reference="ref"`` compares with TFLite's BUILTIN_REF kernels instead, for ops TFLM
    lacks (the TFLM arena is then checked only if ``arena`` says so); ``reference="both"``
    compares with BUILTIN_REF everywhere and with TFLM where ``mask`` (of output 0) is
    True (TFLM's SPACE_TO_BATCH_ND padding is undefined). ``sets`` replaces the random
    inputs (e.g. valid token ids)."""
    graph = load_tflite(path)
    if sets is None:
        sets = random_inputs(graph, n, seed)
    if arena is None:
        arena = reference != "ref"
    if reference == "tflm":
        expected = oracle.tflm_invoke_batch(path, sets)
    else:
        expected = oracle.ref_invoke_batch(path, sets)
    if reference == "both":
        tflm = oracle.tflm_invoke_batch(path, sets)
        for k, (want, got) in enumerate(zip(expected, tflm, strict=True)):
            np.testing.assert_array_equal(np.asarray(got[0]).reshape(mask.shape)[mask],
                                          np.asarray(want[0]).reshape(mask.shape)[mask],
                                          err_msg=f"{path.name}: input {k} TFLM vs REF")
    p = plan(graph, layer_schedule(graph))
    ours = [emulate(graph, p, s, seed=k).outputs for k, s in enumerate(sets)]
    for k, (ys, refs) in enumerate(zip(ours, expected, strict=True)):
        assert len(ys) == len(refs)
        for j, (y, r) in enumerate(zip(ys, refs, strict=True)):
            np.testing.assert_array_equal(y, np.asarray(r).reshape(y.shape),
                                          err_msg=f"{path.name}: input {k} output {j} vs TFLM")
    if c:
        for k, (y, want) in enumerate(zip(run_c(graph, p, [s[0] for s in sets],
                                                tmp / f"c_{path.stem}"), ours, strict=True)):
            np.testing.assert_array_equal(y, want[0].reshape(y.shape),
                                          err_msg=f"{path.name}: input {k}, C vs emulator")
    if arena:
        measured = oracle.tflm_allocations(path)
        predicted = tflm_arena.predict(graph, pointer_bytes=8)
        assert predicted.head == measured["head"], (predicted.head, measured)
        assert abs(predicted.tail - measured["tail"]) <= 16, (predicted.tail, measured)
    return graph


def run_c(graph: Graph, p: Plan, inputs: list[np.ndarray], out: Path) -> list[np.ndarray]:
    """Generate, compile (``-Werror``, junk-filled arena) and run the model on every input
    in one process; the outputs decoded with the graph output's dtype."""
    generate(graph, p, out)
    return run_c_dir(out, inputs, graph.tensors[graph.outputs[0]])


def run_c_dir(out: Path, inputs: list[np.ndarray], output: Tensor) -> list[np.ndarray]:
    """Compile the generated model in ``out`` with the test harness and run every input."""
    from test_codegen import build

    exe = build(out)
    src, dst = out / "inputs.bin", out / "outputs.bin"
    src.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for x in inputs))
    proc = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(np.frombuffer(dst.read_bytes(), dtype=output.dtype)
                .reshape(len(inputs), *output.shape))
