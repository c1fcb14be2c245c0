"""Reference oracles: the TFLM interpreter and TFLite's reference kernels, each in a child process.

Everything tinymcu claims (bit-exact outputs, arena sizes) is checked against these. They run
in a fresh ``python`` child for every call because the TFLM Python wrapper segfaults on a
too-small arena and aborts (SIGABRT) on int8 SOFTMAX over >= 512 elements: a crash must become
an :class:`OracleError` in the caller, not kill it. The child also keeps TensorFlow (seconds of
import, hundreds of MB) out of the calling process, so importing this module stays cheap.

The batch variants run many input sets in one child to pay the import once.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

#: TFLM aligns every arena allocation (and the arena start) to this many bytes.
ARENA_ALIGNMENT = 16

_CHILD_TIMEOUT_S = 600.0


class OracleError(RuntimeError):
    """The reference interpreter failed: it crashed (signal), raised, or timed out."""


# ----------------------------------------------------------------------------------------------
# Child side: these functions run only inside the child process.
# ----------------------------------------------------------------------------------------------

def _tflm_interpreter(model_path: str, arena_size: int | None) -> Any:
    from tflite_micro import runtime

    return runtime.Interpreter.from_file(model_path, arena_size=arena_size)


def _tflm_outputs(interp: Any) -> list[np.ndarray]:
    outputs: list[np.ndarray] = []
    while True:
        try:
            outputs.append(np.array(interp.get_output(len(outputs)), copy=True))
        except IndexError:
            return outputs


def _child_tflm(model_path: str, input_sets: list[list[np.ndarray]],
                arena_size: int | None, reset: bool = True) -> list[list[np.ndarray]]:
    interp = _tflm_interpreter(model_path, arena_size)
    results = []
    for inputs in input_sets:
        if reset:  # reset() also zeroes the variable (state) tensors
            interp.reset()
        for i, x in enumerate(inputs):
            interp.set_input(x, i)
        interp.invoke()
        results.append(_tflm_outputs(interp))
    return results


def _child_ref(model_path: str, input_sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    import tensorflow as tf

    interp = tf.lite.Interpreter(
        model_path=model_path,
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    in_details = interp.get_input_details()
    out_details = interp.get_output_details()
    results = []
    for inputs in input_sets:
        if len(inputs) != len(in_details):
            raise ValueError(f"model has {len(in_details)} inputs, got {len(inputs)}")
        for d, x in zip(in_details, inputs, strict=True):
            interp.set_tensor(d["index"], np.asarray(x, dtype=d["dtype"]).reshape(d["shape"]))
        interp.invoke()
        results.append([np.array(interp.get_tensor(d["index"]), copy=True) for d in out_details])
    return results


def _child_probe(model_path: str, arena_size: int | None, print_allocations: bool) -> bool:
    """Load and invoke once on zero inputs; optionally dump the allocation report to fd 2."""
    interp = _tflm_interpreter(model_path, arena_size)
    i = 0
    while True:
        try:
            d = interp.get_input_details(i)
        except IndexError:
            break
        interp.set_input(np.zeros(tuple(d["shape"]), dtype=d["dtype"]), i)
        i += 1
    interp.invoke()
    if print_allocations:
        sys.stdout.flush()
        interp.print_allocations()
    return True


_CHILD_FUNCS: dict[str, Callable[..., Any]] = {
    "tflm": _child_tflm, "ref": _child_ref, "probe": _child_probe}


def _child_main(request_path: str, result_path: str) -> None:
    """Entry point of the child: read the pickled request, run it, pickle the result."""
    with open(request_path, "rb") as f:
        name, args = pickle.load(f)
    try:
        result: tuple[str, Any] = ("ok", _CHILD_FUNCS[name](*args))
    except Exception as e:  # reported to the parent as OracleError, with the interpreter's text
        result = ("error", f"{type(e).__name__}: {e}")
    with open(result_path, "wb") as f:
        pickle.dump(result, f)


# ----------------------------------------------------------------------------------------------
# Parent side.
# ----------------------------------------------------------------------------------------------

def _run_child(name: str, *args: Any, timeout: float = _CHILD_TIMEOUT_S) -> tuple[Any, str]:
    """Run ``_CHILD_FUNCS[name](*args)`` in a fresh interpreter; return (result, child stderr)."""
    with tempfile.TemporaryDirectory(prefix="tinymcu_oracle_") as tmp:
        req, res = Path(tmp, "request.pkl"), Path(tmp, "result.pkl")
        with open(req, "wb") as f:
            pickle.dump((name, args), f)
        code = ("import sys; from tinymcu.mcu_runtime.oracle import _child_main; "
                "_child_main(sys.argv[1], sys.argv[2])")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        try:
            proc = subprocess.run([sys.executable, "-c", code, str(req), str(res)],
                                  capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            raise OracleError(f"{name} child timed out after {timeout:.0f} s") from e
        if proc.returncode < 0:
            sig = signal.Signals(-proc.returncode).name
            raise OracleError(f"{name} child crashed with {sig}: {_tail(proc.stderr)}")
        if proc.returncode != 0 or not res.exists():
            raise OracleError(f"{name} child exited {proc.returncode}: {_tail(proc.stderr)}")
        with open(res, "rb") as f:
            status, value = pickle.load(f)
        if status != "ok":
            raise OracleError(f"{name} failed: {value} {_tail(proc.stderr)}".strip())
        return value, proc.stderr


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def _as_sets(input_sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    return [[np.ascontiguousarray(x) for x in inputs] for inputs in input_sets]


def tflm_invoke_batch(model_path: str | Path, input_sets: list[list[np.ndarray]],
                      arena_size: int | None = None) -> list[list[np.ndarray]]:
    """Run TFLM once per input set (one child, one interpreter); outputs per set."""
    value, _ = _run_child("tflm", str(model_path), _as_sets(input_sets), arena_size)
    return value


def tflm_invoke_sequence(model_path: str | Path, input_sets: list[list[np.ndarray]],
                         arena_size: int | None = None) -> list[list[np.ndarray]]:
    """Run TFLM on the input sets one after the other *without* a reset in between, so a
    stateful model (SVDF, LSTM) carries its variables from each invocation to the next."""
    value, _ = _run_child("tflm", str(model_path), _as_sets(input_sets), arena_size, False)
    return value


def tflm_invoke(model_path: str | Path, inputs: list[np.ndarray],
                arena_size: int | None = None) -> list[np.ndarray]:
    """Outputs of the TFLM interpreter (reference kernels) for one input set.

    ``arena_size`` None lets the wrapper pick (10 × model size).
    """
    return tflm_invoke_batch(model_path, [inputs], arena_size)[0]


def ref_invoke_batch(model_path: str | Path,
                     input_sets: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Run ``tf.lite.Interpreter`` with BUILTIN_REF kernels once per input set, in one child."""
    value, _ = _run_child("ref", str(model_path), _as_sets(input_sets))
    return value


def ref_invoke(model_path: str | Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of TFLite's reference kernels (not the optimized ones: those differ by ±1)."""
    return ref_invoke_batch(model_path, [inputs])[0]


_TOTAL_RE = re.compile(r"Arena allocation (total|head|tail) (\d+) bytes")
_TYPE_RE = re.compile(r"'([^']+)' used (\d+) bytes with alignment overhead "
                      r"\(requested (\d+) bytes for (\d+) ")


def parse_allocations(text: str) -> dict[str, Any]:
    """Parse TFLM's RecordingMicroAllocator report.

    Returns ``{"total", "head", "tail": int, "types": {name: {"used", "requested", "count"}}}``;
    ``head`` is the non-persistent (planned) part, ``tail`` the persistent allocations.
    """
    out: dict[str, Any] = {"types": {}}
    for line in text.splitlines():
        if m := _TOTAL_RE.search(line):
            out[m.group(1)] = int(m.group(2))
        elif m := _TYPE_RE.search(line):
            out["types"][m.group(1)] = {"used": int(m.group(2)), "requested": int(m.group(3)),
                                        "count": int(m.group(4))}
    if not {"total", "head", "tail"} <= out.keys():
        raise OracleError(f"no allocation report in TFLM output: {_tail(text)}")
    return out


def _default_arena(model_path: str | Path) -> int:
    return max(10 * os.path.getsize(model_path), 1 << 20)


def tflm_allocations(model_path: str | Path, arena_size: int | None = None) -> dict[str, Any]:
    """What TFLM's recording allocator reports after one invoke (see :func:`parse_allocations`).

    The numbers are from the x86-64 wheel: pointers are 8 bytes, so the persistent tail is
    larger than on a 32-bit Cortex-M.
    """
    _, stderr = _run_child("probe", str(model_path), arena_size or _default_arena(model_path),
                           True)
    return parse_allocations(stderr)


def tflm_runs(model_path: str | Path, arena_size: int) -> bool:
    """True if TFLM loads and invokes the model with exactly ``arena_size`` bytes of arena."""
    try:
        _run_child("probe", str(model_path), arena_size, False)
    except OracleError:
        return False
    return True


def tflm_min_arena(model_path: str | Path) -> int:
    """The smallest arena (a multiple of 16 bytes) with which TFLM loads and invokes the model.

    The recorded total is a good first guess but not always enough (Prepare makes temporary
    allocations that the recording misses), so: probe the total, walk up or down in growing
    steps until the answer flips, then bisect. Each probe is one child (a crash ends it).
    """
    total = tflm_allocations(model_path)["total"]
    a = ARENA_ALIGNMENT
    start = -(-total // a) * a
    step = a
    if tflm_runs(model_path, start):
        hi, lo = start, start - step
        while lo > 0 and tflm_runs(model_path, lo):
            hi, step = lo, step * 4
            lo = max(hi - step, 0)
    else:
        lo, hi = start, start + step
        while not tflm_runs(model_path, hi):
            if hi > 64 * max(total, 1 << 16):
                raise OracleError(f"TFLM does not run {model_path} with any arena up to {hi} B")
            lo, step = hi, step * 4
            hi = lo + step
    while hi - lo > a:
        mid = (lo + hi) // 2 // a * a
        if tflm_runs(model_path, mid):
            hi = mid
        else:
            lo = mid
    return hi
