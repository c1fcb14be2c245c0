"""Stateful sequence ops, SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM, bit for bit with TFLM.

Both carry state in variable tensors that TFLM keeps between ``Invoke`` calls, so every
model here is checked two ways on 200 seeded inputs: each input from a reset state
(``tflm_invoke_batch`` resets before each) and all inputs as one sequence without a reset
(``tflm_invoke_sequence``), the emulator carrying its state from run to run. The generated C
runs the same sequence in one process (one arena, junk-filled first) and must equal the
emulator. Synthetic models (``tflite_build``) vary batch, sizes, rank, memory, state type,
time steps and time-major layout, with scales drawn so the int8/int16 values stay in range
instead of saturating; the three real models in ``../shared/models/realworld`` run too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_codegen import build, run_c
from tflite_build import Node, Tensor, write

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import oracle, tflm_arena
from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.emulator import emulate, emulate_sequence
from tinymcu.mcu_runtime.execute import verify_arena_bytes
from tinymcu.mcu_runtime.pipeline import load_graph, plan_and_pick
from tinymcu.mcu_runtime.tflite_reader import load_tflite

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "models" / "realworld"
N_INPUTS = 200




def random_inputs(graph, rng: np.random.Generator, n: int) -> list[list[np.ndarray]]:
    """Seeded inputs over the input type's range, each set at a random amplitude (a full-
    range int16 input saturates a keyword model; small ones exercise the middle)."""
    t = graph.tensors[graph.inputs[0]]
    info = np.iinfo(np.dtype(t.dtype))
    out = []
    for _ in range(n):
        amp = int(min(info.max, 10 ** rng.uniform(0.5, np.log10(info.max))))
        out.append([np.clip(rng.integers(-amp, amp + 1, t.shape), info.min,
                            info.max).astype(t.dtype)])
    return out


def check_against_tflm(path: Path, n: int = N_INPUTS, seed: int = 0,
                       carries: bool = True, varies: bool = True) -> tuple[object, object]:
    """Emulator == TFLM on ``n`` inputs, from a reset state and as one sequence; with
    ``carries`` the sequence must also differ from fresh runs somewhere (the state is used)."""
    _, graph = load_graph(path)
    p = plan_and_pick(graph, "layer", 1 << 30)
    sets = random_inputs(graph, np.random.default_rng(seed), n)
    arena = verify_arena_bytes(path)
    ref = oracle.tflm_invoke_batch(path, sets, arena)
    for k, (s, r) in enumerate(zip(sets, ref, strict=True)):
        y = emulate(graph, p, s, seed=k).outputs[0]
        np.testing.assert_array_equal(y, r[0].reshape(y.shape), err_msg=f"{path.name} input {k}")
    seq = oracle.tflm_invoke_sequence(path, sets, arena)
    ours = emulate_sequence(graph, p, sets)
    for k, (e, r) in enumerate(zip(ours, seq, strict=True)):
        np.testing.assert_array_equal(e.outputs[0], r[0].reshape(e.outputs[0].shape),
                                      err_msg=f"{path.name} sequence step {k}")
    if carries:  # the state really carries: some step differs from a fresh run
        assert any(not np.array_equal(a[0], b[0]) for a, b in zip(ref, seq)), path.name
    if varies:
        assert len({r[0].tobytes() for r in ref}) > 1, f"{path.name}: output never changes"
    return graph, p


def check_c(graph, p, out: Path, n: int = 60, seed: int = 1) -> None:
    """The generated C equals the emulator, as a sequence and with a reset before each."""
    generate(graph, p, out)
    exe = build(out)
    sets = random_inputs(graph, np.random.default_rng(seed), n)
    shape = graph.tensors[graph.outputs[0]].shape
    dtype = graph.tensors[graph.outputs[0]].dtype
    expected = emulate_sequence(graph, p, sets)
    xs = [x[0] for x in sets]
    for k, (y, e) in enumerate(zip(run_c(exe, xs, shape, False, dtype), expected, strict=True)):
        np.testing.assert_array_equal(y, e.outputs[0], err_msg=f"C sequence step {k}")
    for k, y in enumerate(run_c(exe, xs, shape, True, dtype)):
        np.testing.assert_array_equal(y, emulate(graph, p, sets[k], seed=k).outputs[0],
                                      err_msg=f"C after reset, input {k}")


# -- SVDF --------------------------------------------------------------------------------------

def _calibrate(raw: np.ndarray, target: float) -> float:
    """The multiplier that maps ``raw``'s spread to about ``target`` (never zero)."""
    return target / max(float(np.std(raw)), 1.0)


def svdf_model(path: Path, seed: int, batch: int, n_in: int, units: int, rank: int,
               memory: int, state: str = "int16", layers: int = 1) -> Path:
    """``layers`` chained int8 SVDFs with random weights, scales calibrated on random data."""
    rng = np.random.default_rng(seed)
    tensors: list[Tensor] = []
    nodes: list[Node] = []
    s_x, zp_x = float(rng.uniform(0.01, 0.1)), int(rng.integers(-20, 20))
    tensors.append(Tensor((batch, n_in), quant=(s_x, zp_x)))
    x_idx, width = 0, n_in
    wide = state == "int16"
    for _ in range(layers):
        filters = units * rank
        wf = rng.integers(-127, 128, (filters, width)).astype(np.int8)
        t_lim = 12000 if wide else 127
        wt = rng.integers(-t_lim, t_lim + 1, (filters, memory)).astype(state)
        s_wf, s_wt = float(rng.uniform(0.002, 0.02)), float(rng.uniform(1e-4, 1e-2))
        x = rng.integers(-100, 100, (256, width))
        m1 = _calibrate(x @ wf.T.astype(np.int64), 3000.0 if wide else 40.0)
        s_state = float(np.float32(s_x) * np.float32(s_wf) / np.float32(m1))
        zp_state = 0 if wide else int(rng.integers(-10, 10))
        st = rng.integers(-3000 if wide else -50, 3000 if wide else 50, (256, filters, memory))
        per_unit = np.einsum("nfm,fm->nf", st, wt.astype(np.int64)).reshape(256, units, rank)
        m2 = _calibrate(per_unit.sum(axis=2), 40.0)
        s_out = float(np.float32(s_state) * np.float32(s_wt) / np.float32(m2))
        bias = rng.integers(-int(np.std(per_unit)), int(np.std(per_unit)) + 1,
                            units).astype(np.int32)
        zp_out = int(rng.integers(-30, 30))
        base = len(tensors)
        tensors += [Tensor(wf.shape, quant=(s_wf, 0), data=wf),
                    Tensor(wt.shape, state, quant=(s_wt, 0), data=wt),
                    Tensor((units,), "int32", quant=(float(np.float32(s_state) * np.float32(s_wt)),
                                                     0), data=bias),
                    Tensor((batch, memory * filters), state, quant=(s_state, zp_state),
                           variable=True),
                    Tensor((batch, units), quant=(s_out, zp_out))]
        nodes.append(Node("SVDF", [x_idx, base, base + 1, base + 2, base + 3], [base + 4],
                          {"rank": rank, "activation": "RELU" if zp_out < 0 else "NONE"}))
        x_idx, width, s_x, zp_x = base + 4, units, s_out, zp_out
    return write(path, tensors, nodes, [0], [x_idx])


SVDF_CASES = {
    "b1_i16_u8_r1_m4": dict(batch=1, n_in=16, units=8, rank=1, memory=4),
    "b2_i10_u6_r2_m8": dict(batch=2, n_in=10, units=6, rank=2, memory=8),
    "b1_i24_u4_r3_m1": dict(batch=1, n_in=24, units=4, rank=3, memory=1),
    "b1_i12_u5_r1_m6_int8": dict(batch=1, n_in=12, units=5, rank=1, memory=6, state="int8"),
    "two_layers": dict(batch=1, n_in=20, units=8, rank=2, memory=5, layers=2),
}


@pytest.mark.parametrize("case", sorted(SVDF_CASES))
def test_svdf_bit_exact_with_tflm_across_invocations(case: str, tmp_path: Path) -> None:
    path = svdf_model(tmp_path / f"{case}.tflite", seed=len(case), **SVDF_CASES[case])
    check_against_tflm(path, carries=SVDF_CASES[case]["memory"] > 1)


@pytest.mark.parametrize("case", ["b2_i10_u6_r2_m8", "b1_i12_u5_r1_m6_int8", "two_layers"])
def test_svdf_c_equals_emulator_across_invocations(case: str, tmp_path: Path) -> None:
    path = svdf_model(tmp_path / f"{case}.tflite", seed=len(case), **SVDF_CASES[case])
    _, graph = load_graph(path)
    check_c(graph, plan_and_pick(graph, "layer", 1 << 30), tmp_path / "c")


def test_keyword_scrambled_svdf_model_bit_exact_with_tflm_and_c(tmp_path: Path) -> None:
    path = REALWORLD / "tflm_keyword_scrambled.tflite"
    if not path.exists():
        pytest.skip("needs ../shared/models/realworld")
    # its weights are scrambled (a TFLM benchmark model): every SVDF saturates, so the
    # output is the same for any input; the synthetic models above carry the evidence
    graph, p = check_against_tflm(path, carries=False, varies=False)
    check_c(graph, p, tmp_path / "c", n=30)  # int16 input, int32 output: integer QUANTIZE ends
    assert sum(op.kind == "SVDF" for op in graph.ops) == 7 and len(graph.variables()) == 7


def test_svdf_state_is_planned_for_the_whole_run_and_in_tflm_tail(tmp_path: Path) -> None:
    path = svdf_model(tmp_path / "m.tflite", seed=3, batch=1, n_in=16, units=8, rank=1,
                      memory=4, layers=2)
    graph = load_tflite(path)
    p = plan_and_pick(graph, "layer", 1 << 30)
    for t in graph.variables():
        assert p.lifetimes[f"t{t}"] == (0, len(p.schedule.steps) - 1)
    predicted = tflm_arena.predict(graph, pointer_bytes=8)
    assert predicted.tail_parts["TfLiteTensor variable buffer data"] == sum(
        -(-graph.tensors[t].nbytes // 16) * 16 for t in graph.variables())
    measured = oracle.tflm_allocations(path)
    assert measured["types"]["TfLiteTensor variable buffer data"]["used"] == \
        predicted.tail_parts["TfLiteTensor variable buffer data"]
    assert predicted.head == measured["head"]
    assert predicted.tail == measured["tail"]
    # the smallest arena TFLM runs with
    assert predicted.min_arena == oracle.tflm_min_arena(path)


def _svdf_file(tmp_path: Path, **change: object) -> Path:
    rng = np.random.default_rng(0)
    wf = rng.integers(-5, 5, (4, 3)).astype(np.int8)
    wt = rng.integers(-5, 5, (4, 2)).astype(np.int16)
    t = [Tensor((1, 3), quant=(0.1, 0)), Tensor((4, 3), quant=(0.01, 0), data=wf),
         Tensor((4, 2), "int16", quant=(0.001, 0), data=wt),
         Tensor((4,), "int32", quant=(float(np.float32(0.05) * np.float32(0.001)), 0),
                data=np.zeros(4, np.int32)),
         Tensor((1, 8), "int16", quant=(0.05, 0), variable=bool(change.get("variable", True))),
         Tensor((1, 4), quant=(0.1, 0))]
    inputs = [0, 1, 2, -1 if change.get("no_bias") else 3, 4]
    return write(tmp_path / "bad.tflite", t, [Node("SVDF", inputs, [5], {"rank": 1})], [0], [5])


@pytest.mark.parametrize("change, message", [
    ({"no_bias": True}, "has no bias"),
    ({"variable": False}, "not a variable tensor"),
])
def test_bad_svdf_is_one_line(change: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(TinymcuError, match=message):
        load_tflite(_svdf_file(tmp_path, **change))


# -- UNIDIRECTIONAL_SEQUENCE_LSTM ---------------------------------------------------------------

def lstm_model(path: Path, seed: int, batch: int, steps: int, n_in: int, n_state: int,
               time_major: bool = False, cell_power: int = -11, cell_clip: float = 0.0,
               variant: str = "") -> Path:
    """One int8 LSTM (the 8x8→16 kind TFLM runs) with random weights; weight scales are
    calibrated so the gate pre-activations spread over about ±2 instead of saturating.
    ``variant`` adds what TFLM cannot run ("peephole", "cifg", "projection", "layer_norm",
    "stateless") for the refusal tests."""
    rng = np.random.default_rng(seed)
    s_x, zp_x = float(rng.uniform(0.005, 0.05)), int(rng.integers(-30, 30))
    s_h, zp_h = float(rng.choice([1 / 128, 1 / 100])), int(rng.integers(-3, 3))
    x_shape = (steps, batch, n_in) if time_major else (batch, steps, n_in)
    y_shape = (steps, batch, n_state) if time_major else (batch, steps, n_state)
    tensors = [Tensor(x_shape, quant=(s_x, zp_x))]
    x_acc = np.std(rng.integers(-100, 100, (256, n_in)) @ rng.integers(-127, 128, (n_in, 8)))
    h_acc = np.std(rng.integers(-100, 100, (256, n_state))
                   @ rng.integers(-127, 128, (n_state, 8)))
    for k in range(8):  # input→gate ×4 then hidden→gate ×4 (input, forget, cell, output)
        fan, s_in, acc = (n_in, s_x, x_acc) if k < 4 else (n_state, s_h, h_acc)
        target = 8000.0 if k < 4 else 4000.0
        s_w = float(target * 2.0**-12 / (s_in * max(float(acc), 1.0)) * rng.uniform(0.5, 2))
        w = rng.integers(-127, 128, (n_state, fan)).astype(np.int8)
        tensors.append(Tensor(w.shape, quant=(s_w, 0), data=w))
    for k in range(4):
        s_b = float(np.float32(s_x) * np.float32(tensors[1 + k].quant[0]))
        b = rng.integers(-int(x_acc), int(x_acc) + 1, n_state).astype(np.int32)
        tensors.append(Tensor((n_state,), "int32", quant=(s_b, 0), data=b))
    tensors += [Tensor((batch, n_state), quant=(s_h, zp_h), variable=variant != "stateless"),
                Tensor((batch, n_state), "int16", quant=(2.0**cell_power, 0),
                       variable=variant != "stateless"),
                Tensor(y_shape, quant=(s_h, zp_h))]
    hidden, cell, out = len(tensors) - 3, len(tensors) - 2, len(tensors) - 1
    inputs = [0, 1, 2, 3, 4, 5, 6, 7, 8, -1, -1, -1, 9, 10, 11, 12, -1, -1, hidden, cell,
              -1, -1, -1, -1]
    if variant == "peephole":
        tensors.append(Tensor((n_state,), "int16", quant=(1e-3, 0),
                              data=np.ones(n_state, np.int16)))
        inputs[10] = len(tensors) - 1
    if variant == "cifg":
        inputs[1] = inputs[5] = -1
    if variant == "projection":
        tensors.append(Tensor((n_state, n_state), quant=(0.01, 0),
                              data=np.ones((n_state, n_state), np.int8)))
        inputs[16] = len(tensors) - 1
    if variant == "layer_norm":
        tensors.append(Tensor((n_state,), "int16", quant=(1e-3, 0),
                              data=np.ones(n_state, np.int16)))
        inputs[20:24] = [len(tensors) - 1] * 4
    node = Node("UNIDIRECTIONAL_SEQUENCE_LSTM", inputs, [out],
                {"time_major": time_major, "cell_clip": cell_clip})
    return write(path, tensors, [node], [0], [out])


LSTM_CASES = {
    "b1_t5_i8_s6": dict(batch=1, steps=5, n_in=8, n_state=6),
    "b2_t4_i5_s7_time_major": dict(batch=2, steps=4, n_in=5, n_state=7, time_major=True),
    "b3_t3_i10_s4_clip": dict(batch=3, steps=3, n_in=10, n_state=4, cell_clip=2.0),
    "b1_t12_i16_s16_cell2^-13": dict(batch=1, steps=12, n_in=16, n_state=16, cell_power=-13),
    "b2_t6_i3_s9_time_major_cell2^-10": dict(batch=2, steps=6, n_in=3, n_state=9,
                                             time_major=True, cell_power=-10),
}


@pytest.mark.parametrize("case", sorted(LSTM_CASES))
def test_lstm_bit_exact_with_tflm_across_invocations(case: str, tmp_path: Path) -> None:
    path = lstm_model(tmp_path / f"{case}.tflite", seed=len(case), **LSTM_CASES[case])
    check_against_tflm(path)


@pytest.mark.parametrize("case", ["b2_t4_i5_s7_time_major", "b3_t3_i10_s4_clip",
                                  "b1_t12_i16_s16_cell2^-13"])
def test_lstm_c_equals_emulator_across_invocations(case: str, tmp_path: Path) -> None:
    path = lstm_model(tmp_path / f"{case}.tflite", seed=len(case), **LSTM_CASES[case])
    _, graph = load_graph(path)
    check_c(graph, plan_and_pick(graph, "layer", 1 << 30), tmp_path / "c")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tflm_mnist_lstm_int8", "tflm_micro_speech_lstm"])
def test_real_lstm_models_bit_exact_with_tflm_and_c(name: str, tmp_path: Path) -> None:
    path = REALWORLD / f"{name}.tflite"
    if not path.exists():
        pytest.skip("needs ../shared/models/realworld")
    graph, p = check_against_tflm(path)
    check_c(graph, p, tmp_path / "c", n=20)


@pytest.mark.parametrize("variant, message", [
    ("peephole", "peephole LSTM is not supported"),
    ("cifg", "CIFG LSTM"),
    ("projection", "projection LSTM is not supported"),
    ("layer_norm", "layer-norm LSTM is not supported"),
    ("stateless", "not a variable tensor"),
])
def test_lstm_variants_tflm_cannot_run_are_one_line(variant: str, message: str,
                                                    tmp_path: Path) -> None:
    path = lstm_model(tmp_path / "m.tflite", seed=1, batch=1, steps=2, n_in=3, n_state=2,
                      variant=variant)
    with pytest.raises(TinymcuError, match=message):
        load_tflite(path)


def test_lstm_tflm_arena_prediction(tmp_path: Path) -> None:
    """State in the tail, four B·S int16 scratch buffers in the head, OpDataLSTM's layout."""
    path = lstm_model(tmp_path / "m.tflite", seed=5, batch=2, steps=4, n_in=5, n_state=7)
    graph = load_tflite(path)
    predicted = tflm_arena.predict(graph, pointer_bytes=8)
    measured = oracle.tflm_allocations(path)
    assert measured["types"]["TfLiteTensor variable buffer data"]["used"] == \
        predicted.tail_parts["TfLiteTensor variable buffer data"]
    assert predicted.head == measured["head"]
    assert predicted.tail == measured["tail"]


def test_keyword_model_ends_int16_in_int32_out_in_emulator_and_c(tmp_path: Path) -> None:
    """int16 input → QUANTIZE int8 → SOFTMAX int16 → QUANTIZE int32: the ends keyword
    models (tflm_keyword_scrambled) use, with outputs that change with the input."""
    tensors = [Tensor((1, 12), "int16", quant=(1e-3, 0)), Tensor((1, 12), quant=(0.04, -5)),
               Tensor((1, 12), "int16", quant=(1 / 65536, -32768)),
               Tensor((1, 12), "int32", quant=(1 / 32768, 0))]
    nodes = [Node("QUANTIZE", [0], [1]), Node("SOFTMAX", [1], [2], {"beta": 1.0}),
             Node("QUANTIZE", [2], [3])]
    path = write(tmp_path / "ends.tflite", tensors, nodes, [0], [3])
    graph, p = check_against_tflm(path, carries=False)
    check_c(graph, p, tmp_path / "c")


def test_emulate_cli_verifies_consecutive_runs_of_a_stateful_model(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tinymcu import cli

    path = lstm_model(tmp_path / "m.tflite", seed=9, batch=1, steps=3, n_in=4, n_state=5)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).integers(-128, 128, (1, 3, 4)).astype(np.int8))
    with pytest.raises(SystemExit) as exc:
        cli.main(["emulate", str(path), "--input", str(x), "--verify", "--repeat", "4"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "TFLM: bit-exact on all 4 runs" in out
    graph = load_tflite(path)
    p = plan_and_pick(graph, "layer", 1 << 30)
    runs = emulate_sequence(graph, p, [[np.load(x)]] * 4)
    assert not np.array_equal(runs[0].outputs[0], runs[3].outputs[0])  # the state carried


def test_state_read_by_a_stateless_op_and_bad_int16_softmax_are_one_line(tmp_path: Path
                                                                           ) -> None:
    add = [Tensor((1, 4), quant=(0.1, 0)), Tensor((1, 4), quant=(0.1, 0), variable=True),
           Tensor((1, 4), quant=(0.2, 0))]
    path = write(tmp_path / "add.tflite", add, [Node("ADD", [0, 1], [2])], [0], [2])
    with pytest.raises(TinymcuError, match="only a stateful op's state input may be"):
        load_tflite(path)
    add[0].variable = True
    path = write(tmp_path / "in.tflite", add, [Node("ADD", [0, 1], [2])], [0], [2])
    with pytest.raises(TinymcuError, match="graph input tensor 0 is a variable"):
        load_tflite(path)
    sm = [Tensor((1, 4), quant=(0.1, 0)), Tensor((1, 4), "int16", quant=(1 / 65536, 0))]
    path = write(tmp_path / "sm.tflite", sm, [Node("SOFTMAX", [0], [1])], [0], [1])
    with pytest.raises(TinymcuError, match="zero point -32768"):
        load_tflite(path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tflm_mnist_lstm_int8", "tflm_micro_speech_lstm",
                                  "tflm_keyword_scrambled"])
def test_real_stateful_models_tflm_arena_as_measured(name: str) -> None:
    """x86-64 wheel: the LSTM models' head, tail and smallest working arena are predicted
    to the byte (mnist 4,208 B, speech 20,000 B); the seven-SVDF keyword model's head to the
    byte, its tail within 32 B and its smallest arena within 1 % (18,032 vs 18,064 B)."""
    path = REALWORLD / f"{name}.tflite"
    if not path.exists():
        pytest.skip("needs ../shared/models/realworld")
    _, graph = load_graph(path, target="tflm")
    predicted = tflm_arena.predict(graph, pointer_bytes=8)
    measured = oracle.tflm_allocations(path)
    smallest = oracle.tflm_min_arena(path)
    assert predicted.head == measured["head"]
    if name == "tflm_keyword_scrambled":
        assert abs(predicted.tail - measured["tail"]) <= 32
        assert abs(predicted.min_arena - smallest) <= 0.01 * smallest
    else:
        assert (predicted.tail, predicted.min_arena) == (measured["tail"], smallest)
