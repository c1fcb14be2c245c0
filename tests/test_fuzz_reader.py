"""Fuzzing the .tflite reader with mutated real models: every input either loads into a
well-formed Graph or fails with a one-line TinymcuError, quickly and without a crash.

Mutations are the ones that break real parsers: flipped bytes, truncation, splices of
another model's bytes, and 32-bit words overwritten with boundary values (offsets, lengths
and indices in a flatbuffer are 32-bit, so this is how a fuzzer reaches out-of-range and
huge-allocation paths)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.tflite_reader import SUPPORTED_OPS, load_tflite

DATA = Path(__file__).parent / "data"
MODELS = [p.read_bytes() for p in sorted(DATA.glob("*.tflite"))]
BOUNDARY_WORDS = [0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
                  0xFFFFFFFE, 0xFFFFFFFF]

FUZZ = settings(max_examples=1500, deadline=1000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def mutated_model(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(MODELS)))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "splice", "word"]))
        n = len(data)
        if n < 16:
            break
        if kind == "flip":
            for _ in range(draw(st.integers(1, 16))):
                data[draw(st.integers(0, n - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[draw(st.integers(0, n - 1)):]
        elif kind == "splice":
            other = draw(st.sampled_from(MODELS))
            start = draw(st.integers(0, len(other) - 1))
            chunk = other[start:start + draw(st.integers(1, 4096))]
            at = draw(st.integers(0, n - 1))
            data[at:at + (len(chunk) if draw(st.booleans()) else 0)] = chunk
        else:
            for _ in range(draw(st.integers(1, 4))):
                at = draw(st.integers(0, (n - 4) // 4)) * 4  # flatbuffer fields are aligned
                word = draw(st.sampled_from(BOUNDARY_WORDS) | st.integers(0, 2**32 - 1))
                data[at:at + 4] = word.to_bytes(4, "little")
    return bytes(data)


def check_load(data: bytes) -> Graph | None:
    start = time.perf_counter()
    try:
        graph = load_tflite(data)
    except TinymcuError as e:
        assert str(e) and "\n" not in str(e)
        graph = None
    assert time.perf_counter() - start < 1.0
    if graph is not None:
        assert_well_formed(graph)
    return graph


def assert_well_formed(g: Graph) -> None:
    """What the planner and emulator rely on, for any Graph the reader returns."""
    n = len(g.tensors)
    assert [t.index for t in g.tensors] == list(range(n))
    assert [op.index for op in g.ops] == list(range(len(g.ops))) and g.ops
    written = set(g.inputs)
    for op in g.ops:
        assert op.kind in SUPPORTED_OPS
        for t in op.inputs:
            assert -1 <= t < n
            assert t < 0 or g.tensors[t].is_const or g.tensors[t].is_variable or t in written
        for t in op.outputs:
            assert 0 <= t < n and t not in written and not g.tensors[t].is_const
            written.add(t)
    assert all(0 <= t < n for t in (*g.inputs, *g.outputs))
    for t in g.tensors:
        assert all(d >= 0 for d in t.shape) and t.size < 2**31
        if t.is_const:
            assert t.data.shape == t.shape and t.data.dtype == np.dtype(t.dtype)
    for t in g.activations():  # an unquantized int8 is a plain integer only CASTs touch
        plain = all(op.kind == "CAST" for op in g.ops if t.index in (*op.inputs, *op.outputs))
        assert t.size >= 1 and (t.dtype != "int8" or t.quant is not None or plain)


@FUZZ
@given(mutated_model())
def test_mutated_models_load_or_fail_cleanly(data: bytes) -> None:
    check_load(data)


@FUZZ
@given(st.binary(min_size=0, max_size=2048), st.booleans())
def test_random_bytes_fail_cleanly(data: bytes, tfl3: bool) -> None:
    if tfl3 and len(data) >= 8:
        data = data[:4] + b"TFL3" + data[8:]
    assert check_load(data) is None


def test_unmutated_models_pass_the_same_checks() -> None:
    """The invariants above hold on the real models (so the fuzz test can fail)."""
    loaded = [check_load(m) for m in MODELS]
    assert all(g is not None for g in loaded)  # the Signal custom-op model loads too
