"""Property tests of the C runtime's arithmetic against the emulator's Python reference.

The fixed-point helpers of ``mcu_runtime/c/tm_common.h`` / the op headers are compiled once
into a probe program and fed hypothesis-drawn int32 values (edges included); every result
must equal ``mcu_runtime/quant.py``. Single-op graphs then pin the kernels whose inputs the model
tests reach only narrowly: SOFTMAX over short and long rows (TFLM aborts at 512 elements,
the emulator is the reference there) and ADD/SUB/MUL across extreme scale ratios.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from patch_graphs import _quant
from test_codegen import CC, CFLAGS, assert_c_equals_emulator

from tinymcu.mcu_runtime import quant
from tinymcu.mcu_runtime.codegen import runtime_headers
from tinymcu.mcu_runtime.ir import Graph, Op, Tensor
from tinymcu.mcu_runtime.planner import plan
from tinymcu.mcu_runtime.schedule import layer_schedule

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")

PROBE = r"""
#include <stdio.h>
#include "tinymcu_kernels.h"

/* For each record (a, b, e) of argv[1], write seven int32 results to argv[2]. */
int main(int argc, char **argv) {
    int32_t r[3], o[7];
    FILE *fi, *fo;
    if (argc != 3 || !(fi = fopen(argv[1], "rb")) || !(fo = fopen(argv[2], "wb"))) {
        return 2;
    }
    while (fread(r, sizeof r[0], 3, fi) == 3) {
        const int32_t a = r[0], b = r[1], e = r[2];
        o[0] = tm_srdhm(a, b);
        o[1] = tm_rdbpot(a, e & 31);
        o[2] = tm_requant(a, b, e % 32);
        o[3] = tm_exp_neg_q5(a < 0 ? a : -(a & 0x7fffffff));
        o[4] = tm_one_over_one_plus_x(a & 0x7fffffff);
        o[5] = tm_sat_mul_pot(a, e % 6);
        o[6] = tm_rdbpot_wide(a, 32 + (e & 7));
        fwrite(o, sizeof o[0], 7, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("probe")
    for h in runtime_headers():
        shutil.copyfile(h, root / h.name)
    (root / "probe.c").write_text(PROBE)
    exe = root / "probe.bin"
    proc = subprocess.run([CC, *CFLAGS, "-I", str(root), str(root / "probe.c"), "-o", str(exe)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return exe


def expected(a: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The same seven results from the emulator's fixed-point functions."""
    rem = np.fmod(e, 32)  # C's % keeps the dividend's sign
    neg = np.where(a < 0, a, -(a & 0x7FFFFFFF))
    cols = [quant.srdhm(a, b), quant.rounding_divide_by_pot(a, e & 31),
            quant.multiply_by_quantized_multiplier(a, b, rem),
            quant.exp_on_negative_values(neg, 5),
            quant.one_over_one_plus_x_for_x_in_0_1(a & 0x7FFFFFFF),
            np.array([quant.saturating_rounding_mul_by_pot(x, int(k))
                      for x, k in zip(a, np.fmod(e, 6))], dtype=np.int64).reshape(a.shape),
            quant.rounding_divide_by_pot(a, 32 + (e & 7))]
    return np.stack([np.asarray(c, dtype=np.int64) for c in cols], axis=1)


INT32 = st.one_of(st.integers(-(2**31), 2**31 - 1),
                  st.sampled_from([-(2**31), -(2**31) + 1, -1, 0, 1, 2**30, 2**31 - 1]))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(INT32, INT32, st.integers(-31, 31)), min_size=1, max_size=300))
def test_fixed_point_helpers_equal_quant_py(probe: Path, records: list) -> None:
    arr = np.array(records, dtype=np.int64)
    src, dst = probe.parent / "in.bin", probe.parent / "out.bin"
    src.write_bytes(arr.astype(np.int32).tobytes())
    subprocess.run([str(probe), str(src), str(dst)], check=True)
    got = np.frombuffer(dst.read_bytes(), dtype=np.int32).reshape(-1, 7).astype(np.int64)
    want = expected(arr[:, 0], arr[:, 1], arr[:, 2])
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"helper {bad[0][1]} on {records[bad[0][0]]}: C {got[tuple(bad[0])]}"
                           f" Python {want[tuple(bad[0])]}")


def single_op_graph(kind: str, shape: tuple[int, ...], scales: list[float], zps: list[int],
                    **attrs: object) -> Graph:
    """One op on ``len(scales) - 1`` activation inputs of ``shape``; the last scale/zero
    point is the output's."""
    tensors = [Tensor(i, f"t{i}", shape, "int8", _quant(s, z))
               for i, (s, z) in enumerate(zip(scales, zps))]
    n = len(tensors) - 1
    op = Op(0, kind, tuple(range(n)), (n,), dict(attrs))
    return Graph(tensors, [op], list(range(n)), [n], name=kind.lower())


def _two_input_graph_to_one(graph: Graph) -> Graph:
    """The generated C API takes one input, so the binary op's second operand is computed
    from the first by a RELU (two activations of one shape, different quantization)."""
    t0, t1, out = graph.tensors
    relu = Op(0, "RELU", (0,), (1,), {})
    binary = Op(1, graph.ops[0].kind, (0, 1), (2,), graph.ops[0].attrs)
    return Graph([t0, t1, out], [relu, binary], [0], [2], name=graph.name)


@pytest.mark.slow
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(1, 700), rows=st.integers(1, 3), scale=st.floats(0.002, 0.5),
       beta=st.sampled_from([1.0, 0.5, 2.0]), seed=st.integers(0, 1000))
def test_softmax_c_equals_emulator(depth: int, rows: int, scale: float, beta: float, seed: int,
                                   tmp_path: Path) -> None:
    graph = single_op_graph("SOFTMAX", (rows, depth), [scale, 1 / 256], [3, -128], beta=beta)
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, (rows, depth)).astype(np.int8) for _ in range(2)]
    inputs.append(np.full((rows, depth), 7, dtype=np.int8))  # ties: equal exponentials
    assert_c_equals_emulator(graph, plan(graph, layer_schedule(graph)), inputs,
                             tmp_path / f"s{depth}-{rows}-{seed}")


@pytest.mark.slow
@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["ADD", "SUB", "MUL"]),
       scales=st.lists(st.floats(1e-3, 2.0), min_size=3, max_size=3),
       zps=st.lists(st.integers(-128, 127), min_size=3, max_size=3),
       activation=st.sampled_from(["NONE", "RELU", "RELU6"]), seed=st.integers(0, 1000))
def test_elementwise_c_equals_emulator(kind: str, scales: list[float], zps: list[int],
                                       activation: str, seed: int, tmp_path: Path) -> None:
    graph = _two_input_graph_to_one(single_op_graph(kind, (1, 3, 5, 4), scales, zps,
                                                    activation=activation))
    rng = np.random.default_rng(seed)
    inputs = [rng.integers(-128, 128, (1, 3, 5, 4)).astype(np.int8) for _ in range(3)]
    assert_c_equals_emulator(graph, plan(graph, layer_schedule(graph)), inputs,
                             tmp_path / f"e{seed}")
