"""Run a .tflite end to end on the host: read → schedule → plan → emulate (→ compare with TFLM).

This is the Python API behind `tinymcu emulate`: it validates the inputs against the model,
plans the arena for the requested schedule and executes every step inside that arena.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.emulator import emulate_sequence
from tinymcu.mcu_runtime.pipeline import load_graph, plan_and_pick


@dataclass
class Execution:
    outputs: list[np.ndarray]
    schedule_kind: str
    arena_bytes: int
    high_water: int
    steps: int
    tflm_equal: bool | None = None
    #: why TFLM gave no answer (crash, error, too small an arena): not a mismatch
    tflm_error: str | None = None


def validate_inputs(graph_inputs: list[tuple[tuple[int, ...], str]],
                    inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Check count, shape and dtype; a missing batch dimension of 1 is added."""
    if len(inputs) != len(graph_inputs):
        raise TinymcuError(f"the model has {len(graph_inputs)} input(s), got {len(inputs)}")
    out = []
    for i, (x, (shape, dtype)) in enumerate(zip(inputs, graph_inputs)):
        if x.shape != shape and (1, *x.shape) == shape:
            x = x.reshape(shape)
        if x.shape != shape:
            raise TinymcuError(f"input {i}: shape {list(x.shape)}, the model wants {list(shape)}")
        if x.dtype != np.dtype(dtype):
            raise TinymcuError(f"input {i}: dtype {x.dtype}, the model wants {dtype}")
        out.append(np.ascontiguousarray(x))
    return out


def execute(path: str | Path, inputs: list[np.ndarray], schedule: str = "layer",
            sram_bytes: int = 256 * 1024, verify: bool = False,
            fuse: bool = False, repeat: int = 1) -> Execution:
    """Emulate ``path`` on ``inputs``; with ``verify`` also run TFLM and compare bit for bit.

    ``fuse`` runs the stride-2 expand + depthwise pairs fused (``pipeline.load_graph``).
    ``repeat`` runs the input that many times back to back from a reset state, carrying a
    stateful model's state (SVDF, LSTM) from run to run as TFLM does without a reset;
    ``verify`` then compares every run, and ``outputs`` are the last run's."""
    path = Path(path)
    if repeat < 1:
        raise TinymcuError(f"--repeat must be at least 1, got {repeat}")
    _, graph = load_graph(path, target="tinymcu", fuse=fuse)
    inputs = validate_inputs([(graph.tensors[i].shape, graph.tensors[i].dtype)
                              for i in graph.inputs], inputs)
    chosen = plan_and_pick(graph, schedule, sram_bytes)
    results = emulate_sequence(graph, chosen, [inputs] * repeat)
    result = results[-1]
    run = Execution(result.outputs, chosen.schedule.kind, chosen.arena_bytes, result.high_water,
                    len(chosen.schedule.steps))
    if verify:
        from tinymcu.mcu_runtime.oracle import OracleError, tflm_invoke_sequence

        try:
            refs = tflm_invoke_sequence(str(path), [inputs] * repeat,
                                        arena_size=verify_arena_bytes(path))
        except OracleError as e:
            run.tflm_error = str(e)
        else:
            run.tflm_equal = all(np.array_equal(a, np.asarray(b).reshape(a.shape))
                                 for r, ref in zip(results, refs, strict=True)
                                 for a, b in zip(r.outputs, ref, strict=True))
    return run


def verify_arena_bytes(path: Path) -> int:
    """Arena to give the TFLM interpreter when checking ``path``: our own prediction, doubled.

    The wrapper's default (10 × the file size) is too small for models whose activations
    outweigh their weights (a 6 kB embedding model needs 94 kB), and TFLM then fails instead
    of computing. The prediction is for the 64-bit wheel (``pointer_bytes=8``); doubling it
    plus 64 KiB covers what it misses, and the default is kept when it is larger. A graph
    our TFLM model cannot describe falls back to the default.
    """
    from tinymcu.mcu_runtime.tflm_arena import predict

    default = max(10 * path.stat().st_size, 1 << 20)
    try:
        _, graph = load_graph(path, target="tflm")
        predicted = predict(graph, pointer_bytes=8).min_arena
    except TinymcuError:
        return default
    return max(default, 2 * predicted + (64 << 10))
