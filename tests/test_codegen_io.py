"""The C runtime on models with several inputs/outputs and on broadcasting ADD/SUB/MUL.

Each case is a small int8 model written with ``tflite_build`` (exact shapes and
quantization), run on 200+ seeded inputs by TFLM (one child), the emulator and the
generated C (host build, junk-filled arena, all inputs back to back in one process).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_codegen import CC, build
from tflite_build import Node, Tensor, write

from tinymcu.mcu_runtime import oracle
from tinymcu.mcu_runtime.codegen import codegen_model
from tinymcu.mcu_runtime.emulator import emulate
from tinymcu.mcu_runtime.ir import Graph

pytestmark = pytest.mark.skipif(CC is None, reason="needs a host C compiler")

N_INPUTS = 200


def run_c_sets(exe: Path, graph: Graph, sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Run the C model on every input set: inputs and outputs concatenated per record."""
    src, dst = exe.parent / "inputs.bin", exe.parent / "outputs.bin"
    src.write_bytes(b"".join(np.ascontiguousarray(x).tobytes() for xs in sets for x in xs))
    proc = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    raw, outs = dst.read_bytes(), []
    per = sum(graph.tensors[t].nbytes for t in graph.outputs)
    assert len(raw) == per * len(sets)
    for k in range(len(sets)):
        off, ys = k * per, []
        for t in graph.outputs:
            tensor = graph.tensors[t]
            ys.append(np.frombuffer(raw[off:off + tensor.nbytes], dtype=tensor.dtype)
                      .reshape(tensor.shape))
            off += tensor.nbytes
        outs.append(ys)
    return outs


def check_three_ways(path: Path, tmp: Path, seed: int) -> None:
    """emulator == TFLM and C == emulator on every output element of N_INPUTS inputs."""
    r = codegen_model(path, tmp / "c")
    g = r.graph
    rng = np.random.default_rng(seed)
    sets = [[rng.integers(-128, 128, g.tensors[t].shape).astype(np.int8) for t in g.inputs]
            for _ in range(N_INPUTS)]
    ref = oracle.tflm_invoke_batch(path, sets, arena_size=1 << 20)
    ours = [emulate(g, r.plan, xs, seed=k).outputs for k, xs in enumerate(sets)]
    c = run_c_sets(build(r.files[0].parent), g, sets)
    for k in range(N_INPUTS):
        assert len(ref[k]) == len(ours[k]) == len(c[k]) == len(g.outputs)
        for j, (e, t, y) in enumerate(zip(ours[k], ref[k], c[k], strict=True)):
            np.testing.assert_array_equal(e.reshape(t.shape), t, err_msg=f"emu in {k} out {j}")
            np.testing.assert_array_equal(y, e.reshape(y.shape), err_msg=f"C in {k} out {j}")


def _q(rng: np.random.Generator) -> tuple[float, int]:
    return float(rng.uniform(0.01, 0.2)), int(rng.integers(-40, 40))


BROADCASTS = [
    ((1, 5, 6, 8), (8,), True),            # per-channel constant (a folded BatchNorm)
    ((1, 5, 6, 8), (1, 1, 1, 8), False),   # squeeze-excitation style activation
    ((1, 1, 6, 8), (1, 5, 1, 8), False),   # both inputs broadcast
    ((1, 10, 8), (1, 1, 8), False),        # rank 3
    ((1, 4, 4, 3), (), True),              # a scalar constant
    ((3,), (1, 4, 4, 3), False),           # the broadcast input first
]


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("a_shape,b_shape,b_const", BROADCASTS)
def test_broadcast_elementwise_c_equals_emulator_equals_tflm(kind, a_shape, b_shape, b_const,
                                                              tmp_path):
    rng = np.random.default_rng(len(a_shape) * 31 + len(b_shape) + ord(kind[0]))
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    b = Tensor(b_shape, quant=_q(rng),
               data=rng.integers(-128, 128, b_shape).astype(np.int8) if b_const else None)
    tensors = [Tensor(a_shape, quant=_q(rng)), b, Tensor(tuple(out_shape), quant=_q(rng))]
    inputs = [0] if b_const else [0, 1]
    path = write(tmp_path / "m.tflite", tensors, [Node(kind, [0, 1], [2])], inputs, [2])
    check_three_ways(path, tmp_path, seed=len(b_shape))


def test_several_inputs_and_outputs(tmp_path):
    """Two activation inputs, three outputs produced at different steps (the first one
    must stay intact in the arena until the end), one of them a broadcast MUL."""
    rng = np.random.default_rng(5)
    c = Tensor((8,), quant=_q(rng), data=rng.integers(-128, 128, 8).astype(np.int8))
    tensors = [Tensor((1, 4, 4, 8), quant=_q(rng)), Tensor((1, 4, 4, 8), quant=_q(rng)),
               Tensor((1, 4, 4, 8), quant=_q(rng)), c, Tensor((1, 4, 4, 8), quant=_q(rng)),
               Tensor((1, 4, 4, 8), quant=_q(rng))]
    ops = [Node("ADD", [0, 1], [2]), Node("MUL", [2, 3], [4]), Node("SUB", [4, 0], [5])]
    path = write(tmp_path / "m.tflite", tensors, ops, [0, 1], [2, 5, 4])
    check_three_ways(path, tmp_path, seed=6)
    header = (tmp_path / "c" / "model.h").read_text()
    assert "#define TINYMCU_NUM_INPUTS 2" in header and "#define TINYMCU_NUM_OUTPUTS 3" in header
    assert "#define TINYMCU_INPUT_BYTES 256" in header  # both inputs, concatenated
    assert "#define TINYMCU_OUTPUT2_BYTES 128" in header


@pytest.mark.slow
@pytest.mark.parametrize("name", ["omv_blazeface_128", "st_squeezenet10_128"])
def test_realworld_multi_output_and_broadcast_models_in_c(name, tmp_path):
    """BlazeFace (4 float32 outputs behind DEQUANTIZE) and SqueezeNet (per-channel MUL/ADD
    constants): generated C == emulator on 50 seeded inputs."""
    path = Path(__file__).parents[2] / "shared" / "models" / "realworld" / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    r = codegen_model(path, tmp_path / "c")
    g = r.graph
    rng = np.random.default_rng(1)
    quantize = {op.inputs[0]: g.tensors[op.outputs[0]].quant for op in g.ops
                if op.kind == "QUANTIZE" and op.inputs[0] in g.inputs}
    sets = []
    for _ in range(50):
        xs = []
        for t in g.inputs:
            tensor = g.tensors[t]
            if tensor.dtype in ("int8", "uint8"):
                info = np.iinfo(tensor.dtype)
                xs.append(rng.integers(info.min, info.max + 1, tensor.shape)
                          .astype(tensor.dtype))
                continue
            q = quantize[t]  # a float32 input: values on the grid of its QUANTIZE
            codes = rng.integers(-128, 128, tensor.shape)
            xs.append(((codes - int(q.zero_point[0])) * float(q.scale[0])).astype(np.float32))
        sets.append(xs)
    c = run_c_sets(build(r.files[0].parent), g, sets)
    for k, xs in enumerate(sets):
        for y, e in zip(c[k], emulate(g, r.plan, xs, seed=k).outputs, strict=True):
            np.testing.assert_array_equal(y, e.reshape(y.shape), err_msg=f"input {k}")
