"""TFLM's Signal custom ops (the micro_speech audio front end): the FlexBuffer options
decoder, the reader's custom-op path, the fixed-point helpers against literal
reimplementations of TFLM's loops, the generated C against the emulator, and the whole front
end — int16 [1, 480] audio frames to int8 [40] features — bit-exact with the TFLM interpreter
over long sequences of frames, where SignalFilterBankSpectralSubtraction's noise estimate
carries from frame to frame."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_codegen import build, run_c
from test_seqops import random_inputs

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import flexbuf, oracle, tflm_arena
from tinymcu.mcu_runtime.codegen import generate
from tinymcu.mcu_runtime.emulator import emulate, emulate_sequence
from tinymcu.mcu_runtime.execute import verify_arena_bytes
from tinymcu.mcu_runtime.ops.signal import kernel, kiss_factors, leaf_order, log_lut
from tinymcu.mcu_runtime.pipeline import load_graph, plan_and_pick
from tinymcu.mcu_runtime.tflite_reader import load_tflite

DATA = Path(__file__).parent / "data"
MODEL = DATA / "audio_preprocessor_int8.tflite"  # copies of the shared TFLM example files
#: micro_speech framing: 30 ms windows every 20 ms at 16 kHz
FRAME, HOP = 480, 320

def wav_frames(name: str) -> list[np.ndarray]:
    """The consecutive [1, 480] int16 frames of a 16 kHz mono sample (49 per second)."""
    with wave.open(str(DATA / f"{name}.wav")) as f:
        audio = np.frombuffer(f.readframes(f.getnframes()), np.int16)
    return [audio[k:k + FRAME].reshape(1, FRAME) for k in range(0, audio.size - FRAME + 1, HOP)]


# ---- FlexBuffers -------------------------------------------------------------------------
_text = st.characters(min_codepoint=32, max_codepoint=126)  # flexbuffers keys are ASCII
flex_values = st.recursive(
    st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.booleans(),
              st.floats(-1e30, 1e30), st.text(_text, max_size=8)),  # the package's
    # encoder itself fails on doubles beyond float32 range
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(_text, min_size=1, max_size=6), inner,
                      max_size=4),
    max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(_text, min_size=1, max_size=8),
                       flex_values, max_size=6))
def test_flexbuffer_maps_decode_as_the_flatbuffers_package_does(obj: dict) -> None:
    """Our decoder equals the ``flatbuffers`` package's (a test-only reference: the core
    install must not need it) on maps of ints, bools, floats, strings, vectors, maps."""
    flexbuffers = pytest.importorskip("flatbuffers.flexbuffers")
    buf = flexbuffers.Dumps(obj)
    assert flexbuf.loads_map(buf) == flexbuffers.Loads(buf)


def test_flexbuffer_typed_vectors_decode() -> None:
    flexbuffers = pytest.importorskip("flatbuffers.flexbuffers")
    b = flexbuffers.Builder()
    with b.Map():
        b.Key("ints")
        b.TypedVectorFromElements([1, -2, 300])
        b.Key("floats")
        b.TypedVectorFromElements([0.5, 1.5])
        b.Key("pair")
        b.FixedTypedVectorFromElements([7, 9])
    assert flexbuf.loads_map(b.Finish()) == {"ints": [1, -2, 300], "floats": [0.5, 1.5],
                                             "pair": [7, 9]}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzzed_flexbuffers_fail_with_one_clear_error(data: bytes) -> None:
    """Any bytes: a value, or a TinymcuError naming the problem — never another exception."""
    try:
        flexbuf.loads(data)
    except TinymcuError as e:
        assert "\n" not in str(e)


# ---- the reader ----------------------------------------------------------------------------
def test_reader_decodes_every_signal_op_option() -> None:
    g = load_tflite(MODEL)
    attrs = {op.kind: op.attrs for op in g.ops}
    assert attrs["SignalWindow"] == {"shift": 12}
    assert attrs["SignalRfft"] == {"fft_length": 512}
    assert attrs["SignalEnergy"] == {"start": 5, "end": 241}
    assert attrs["SignalFilterBank"] == {"channels": 40}
    assert attrs["SignalPCAN"] == {"snr_shift": 6}
    assert attrs["SignalFilterBankLog"] == {"correction_bits": 3, "output_scale": 64}
    ss = attrs["SignalFilterBankSpectralSubtraction"]
    assert (ss["smoothing"], ss["one_minus_smoothing"], ss["alternate_smoothing"],
            ss["alternate_one_minus_smoothing"], ss["min_signal_remaining"],
            ss["smoothing_bits"], ss["spectral_subtraction_bits"], ss["clamping"],
            ss["channels"]) == (409, 15975, 983, 15401, 819, 10, 14, False, 40)
    # the noise estimate the kernel keeps is a variable the file does not have
    state = [t for t in g.tensors if t.kernel_state]
    assert [(t.shape, t.dtype, t.is_variable) for t in state] == [((40,), "uint32", True)]
    assert g.variables() == [state[0].index]


def test_unknown_custom_op_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "renamed.tflite"
    bad.write_bytes(MODEL.read_bytes().replace(b"SignalWindow", b"SignalWindoX"))
    with pytest.raises(TinymcuError, match="custom op 'SignalWindoX', which tinymcu does "
                                           "not support"):
        load_tflite(bad)
    proc = subprocess.run([sys.executable, "-m", "tinymcu", "check", str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_bad_custom_option_is_a_clear_error(tmp_path: Path) -> None:
    """A FlexBuffer whose values do not fit the op (fft_length 500: not a power of two)."""
    data = MODEL.read_bytes()
    flexbuffers = pytest.importorskip("flatbuffers.flexbuffers")
    old = flexbuffers.Dumps({"T": 7, "fft_length": 512})
    new = flexbuffers.Dumps({"T": 7, "fft_length": 500})
    assert len(old) == len(new) and data.count(old) == 1
    bad = tmp_path / "fft500.tflite"
    bad.write_bytes(data.replace(old, new))
    with pytest.raises(TinymcuError, match=r"op 3 \(SignalRfft\): fft_length 500"):
        load_tflite(bad)


# ---- fixed-point helpers ---------------------------------------------------------------
def _digit_sqrt(num: int, bits: int) -> int:
    """TFLM's Sqrt32/Sqrt64 loop, written out bit by bit (an independent reference)."""
    if num == 0:
        return 0
    top = (bits - num.bit_length()) | 1
    bit, res = 1 << (bits - 1 - top), 0
    for _ in range((bits - 1 - top) // 2 + 1):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    return res + 1 if num > res and res != (1 << bits // 2) - 1 else res


@settings(max_examples=500, deadline=None)
@given(st.integers(0, (1 << 64) - 1))
def test_square_roots_match_tflms_digit_loop(n: int) -> None:
    expected = _digit_sqrt(n, 32) if n >> 32 == 0 else _digit_sqrt(n, 64)
    assert kernel.sqrt64(n) == expected


def test_log_correction_table_is_the_one_tflm_ships() -> None:
    """Spot values of TFLM's kLogLut (log.cc) and its shape: 0 at both ends, peak 5641."""
    lut = log_lut()
    assert lut.size == 130 and lut[0] == 0 and lut[128] == 0 and lut[129] == 0
    assert (lut[1], lut[2], lut[60], lut[127]) == (224, 442, 5626, 142)
    assert int(lut.max()) == 5641


def test_max_abs_keeps_tflms_int16_quirk() -> None:
    """-(-32768) stored in int16 is -32768: a later value then wins the scan."""
    assert kernel.max_abs16(np.array([5, -7, 3], np.int16)) == 7
    assert kernel.max_abs16(np.array([100, -32768, 3], np.int16)) == 3
    assert kernel.max_abs16(np.array([-32768], np.int16)) == -32768


def test_kiss_factors_follow_kf_factor() -> None:
    assert kiss_factors(256) == [(4, 64), (4, 16), (4, 4), (4, 1)]
    assert kiss_factors(128) == [(4, 32), (4, 8), (4, 2), (2, 1)]


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 32767), st.integers(0, 2**32 - 1))
def test_fixed_point_rfft_tracks_the_float_transform(amp: int, seed: int) -> None:
    """kiss_fft's int16 FFT scales by 1/N overall; it stays within a few LSB of
    rfft(x)/N (a sanity check on the radix-4/2 stages; exactness is the TFLM test)."""
    from tinymcu.mcu_runtime.ir import Graph, Op, Tensor
    from tinymcu.mcu_runtime.ops import get
    x = np.random.default_rng(seed).integers(-amp, amp + 1, 512).astype(np.int16)
    op = Op(0, "SignalRfft", (0,), (1,), {"fft_length": 512})
    g = Graph([Tensor(0, "x", (512,), "int16"), Tensor(1, "y", (514,), "int16")], [op], [0],
              [1])
    y = get("SignalRfft").run(op, g, [x])[0].astype(np.float64)
    ref = np.fft.rfft(x.astype(np.float64)) / 512
    err = np.abs(y[0::2] - ref.real).max(), np.abs(y[1::2] - ref.imag).max()
    assert max(err) <= 4, err


# ---- the whole front end against TFLM ----------------------------------------------------
def test_audio_front_end_sequence_bit_exact_with_tflm() -> None:
    """Every frame of both 1 s samples (98 frames) and 200 seeded random frames, run as one
    sequence without a reset — the noise estimate carries — equal TFLM's, frame for frame;
    and the state really matters (a fresh run of the same frame differs)."""
    _, graph = load_graph(MODEL)
    p = plan_and_pick(graph, "layer", 1 << 30)
    sets = [[f] for f in wav_frames("yes_1000ms") + wav_frames("no_1000ms")]
    sets += random_inputs(graph, np.random.default_rng(0), 200)
    arena = verify_arena_bytes(MODEL)
    theirs = oracle.tflm_invoke_sequence(MODEL, sets, arena)
    ours = emulate_sequence(graph, p, sets)
    mismatches = [k for k, (e, r) in enumerate(zip(ours, theirs, strict=True))
                  if not np.array_equal(e.outputs[0], r[0].reshape(e.outputs[0].shape))]
    assert mismatches == [], f"{len(mismatches)} of {len(sets)} frames differ: {mismatches[:5]}"
    fresh = oracle.tflm_invoke_batch(MODEL, sets, arena)
    assert sum(not np.array_equal(a[0], b[0]) for a, b in zip(fresh, theirs)) > len(sets) // 2
    assert len({r[0].tobytes() for r in theirs}) > 50  # the features move with the audio


def test_audio_front_end_cli_check_and_verify(tmp_path: Path) -> None:
    frame = tmp_path / "frame.npy"
    np.save(frame, wav_frames("yes_1000ms")[24])
    check = subprocess.run([sys.executable, "-m", "tinymcu", "check", str(MODEL)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    run = subprocess.run([sys.executable, "-m", "tinymcu", "emulate", str(MODEL), "--input",
                          str(frame), "--verify", "--repeat", "8"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "bit-exact on all 8 runs" in run.stdout


def test_generated_c_equals_the_emulator_frame_by_frame(tmp_path: Path) -> None:
    """The host build of the generated C (``-Werror``, junk-filled arena) equals the
    emulator over the wav frames and 60 random ones, as one sequence (the noise estimate in
    the arena carries) and with ``tinymcu_reset`` before each frame."""
    _, graph = load_graph(MODEL)
    p = plan_and_pick(graph, "layer", 1 << 30)
    generate(graph, p, tmp_path / "c")
    exe = build(tmp_path / "c")
    sets = [[f] for f in wav_frames("yes_1000ms")] + random_inputs(
        graph, np.random.default_rng(3), 60)
    expected = emulate_sequence(graph, p, sets)
    xs = [s[0] for s in sets]
    for k, (y, e) in enumerate(zip(run_c(exe, xs, (40,)), expected, strict=True)):
        np.testing.assert_array_equal(y, e.outputs[0], err_msg=f"C sequence frame {k}")
    for k, y in enumerate(run_c(exe, xs, (40,), reset=True)):
        np.testing.assert_array_equal(y, emulate(graph, p, sets[k]).outputs[0],
                                      err_msg=f"C after reset, frame {k}")


def test_rfft_leaf_order_is_kf_works_recursion() -> None:
    """The C walks kf_work without recursion: its leaf permutation, checked here on a
    mixed radix-4/2 length, is the base-4/2 digit reversal of the input index."""
    order = leaf_order(8, kiss_factors(8))
    assert order.tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert sorted(leaf_order(256, kiss_factors(256)).tolist()) == list(range(256))


@pytest.mark.slow
def test_predicted_tflm_arena_matches_the_smallest_that_runs() -> None:
    measured = oracle.tflm_min_arena(MODEL)
    predicted = tflm_arena.predict(load_tflite(MODEL), pointer_bytes=8).min_arena
    assert measured <= predicted < 1.05 * measured, (predicted, measured)


# ---- one Signal op at a time against TFLM, on inputs the front end never produces ---------
def _real_consts() -> dict[str, np.ndarray]:
    """The filter-bank tables and the PCAN LUT of the micro_speech front end."""
    g = load_tflite(MODEL)
    out = {}
    for op in g.ops:
        if op.kind == "SignalFilterBank":
            for name, t in zip(("w", "uw", "fs", "ws", "widths"), op.inputs[1:], strict=True):
                out[name] = g.tensors[t].data
        if op.kind == "SignalPCAN":
            out["lut"] = g.tensors[op.inputs[2]].data
    return out


def _full_range(rng: np.random.Generator, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    """Random values over the whole type, at a random bit width (small and saturating)."""
    info = np.iinfo(np.dtype(dtype))
    bits = int(rng.integers(1, info.bits + 1))
    hi = min(int(info.max), (1 << bits) - 1)
    lo = max(int(info.min), -(1 << bits)) if info.min < 0 else 0
    return rng.integers(lo, hi, shape, dtype=np.int64 if dtype != "uint64" else np.uint64,
                        endpoint=True).astype(dtype)


def _one_op_cases() -> dict:
    from tflite_build import Tensor as T
    c = _real_consts()
    rng = np.random.default_rng(5)
    w = rng.integers(-32768, 32768, 64).astype(np.int16)
    fb = [T((257,), "uint32"), *(T(c[k].shape, "int16", data=c[k])
                                 for k in ("w", "uw", "fs", "ws", "widths")), T((40,), "uint64")]
    ss = {"alternate_one_minus_smoothing": 15401, "alternate_smoothing": 983,
          "min_signal_remaining": 819, "num_channels": 16, "one_minus_smoothing": 15975,
          "smoothing": 409, "smoothing_bits": 10, "spectral_subtraction_bits": 14}
    return {
        "window": ([T((2, 64), "int16"), T((64,), "int16", data=w), T((2, 64), "int16")],
                   "SignalWindow", {"shift": 9}, [0, 1], [2]),
        "auto_scale": ([T((96,), "int16"), T((96,), "int16"), T((), "int32")],
                       "SignalFftAutoScale", {}, [0], [1, 2]),
        "rfft_256": ([T((200,), "int16"), T((258,), "int16")], "SignalRfft",
                     {"T": 7, "fft_length": 256}, [0], [1]),
        "rfft_512": ([T((2, 512), "int16"), T((2, 514), "int16")], "SignalRfft",
                     {"T": 7, "fft_length": 512}, [0], [1]),
        "filter_bank": (fb, "SignalFilterBank", {"num_channels": 40}, [0, 1, 2, 3, 4, 5], [6]),
        "sqrt": ([T((40,), "uint64"), T((), "int32", data=np.array(3, np.int32)),
                  T((40,), "uint32")], "SignalFilterBankSquareRoot", {}, [0, 1], [2]),
        "spectral_sub": ([T((16,), "uint32"), T((16,), "uint32"), T((16,), "uint32")],
                         "SignalFilterBankSpectralSubtraction", {**ss, "clamping": False},
                         [0], [1, 2]),
        "spectral_sub_clamping": ([T((16,), "uint32"), T((16,), "uint32"),
                                   T((16,), "uint32")], "SignalFilterBankSpectralSubtraction",
                                  {**ss, "clamping": True}, [0], [1, 2]),
        "pcan": ([T((40,), "uint32"), T((40,), "uint32"),
                  T(c["lut"].shape, "int16", data=c["lut"]), T((40,), "uint32")],
                 "SignalPCAN", {"snr_shift": 6}, [0, 1, 2], [3]),
        "energy": ([T((258,), "int16"), T((129,), "uint32")], "SignalEnergy",
                   {"end_index": 120, "start_index": 3}, [0], [1]),
        "log": ([T((40,), "uint32"), T((40,), "int16")], "SignalFilterBankLog",
                {"input_correction_bits": 3, "output_scale": 64}, [0], [1]),
    }


@pytest.mark.parametrize("case", sorted(_one_op_cases()))
def test_signal_op_alone_bit_exact_with_tflm(case: str, tmp_path: Path) -> None:
    """Each op in a one-op model, 60 random inputs over its types' full range (saturating
    windows, -32768 in the auto-scale scan, full-scale FFTs, 64-bit square roots, noise
    estimates of every octave), run as one sequence (the stateful op carries its state).
    SignalEnergy is compared on the bins it computes: TFLM leaves the others unwritten."""
    from tflite_build import Node, write
    tensors, kind, options, ins, outs = _one_op_cases()[case]
    graph_inputs = [i for i in ins if tensors[i].data is None]
    path = write(tmp_path / f"{case}.tflite", tensors,
                 [Node(kind, ins, outs, {"custom": options})], graph_inputs, outs)
    graph = load_tflite(path)
    p = plan_and_pick(graph, "layer", 1 << 30)
    rng = np.random.default_rng(sum(map(ord, case)))
    sets = []
    for _ in range(60):
        xs = [_full_range(rng, tensors[i].dtype, tensors[i].shape) for i in graph_inputs]
        if kind == "SignalFftAutoScale" and rng.random() < 0.3:
            xs[0][rng.integers(0, xs[0].size)] = -32768
        sets.append(xs)
    theirs = oracle.tflm_invoke_sequence(path, sets, verify_arena_bytes(path))
    ours = emulate_sequence(graph, p, sets)
    keep = slice(options["start_index"], options["end_index"]) if kind == "SignalEnergy" \
        else slice(None)
    for k, (e, r) in enumerate(zip(ours, theirs, strict=True)):
        for y, t in zip(e.outputs, r, strict=True):
            np.testing.assert_array_equal(y.reshape(-1)[keep], t.reshape(-1)[keep],
                                          err_msg=f"{case} input {k}")
