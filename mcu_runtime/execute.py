"""Run a .tflite end to end on the host: read → schedule → plan → emulate (→ compare with TFLM).

This is the Python API behind `tinymcu emulate`: it validates the inputs against the model,
plans the arena for the requested schedule and executes every step inside that arena.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import TinymcuError
from .check import candidate_schedules, load_graph, pick
from .emulator import emulate
from .patch import schedule_macs
from .planner import plan


@dataclass
class Execution:
    outputs: list[np.ndarray]
    schedule_kind: str
    arena_bytes: int
    high_water: int
    steps: int
    tflm_equal: bool | None = None


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
            fuse: bool = False) -> Execution:
    """Emulate ``path`` on ``inputs``; with ``verify`` also run TFLM and compare bit for bit.

    ``fuse`` runs the stride-2 expand + depthwise pairs fused (``check.load_graph``)."""
    path = Path(path)
    _, graph = load_graph(path, target="tinymcu", fuse=fuse)
    inputs = validate_inputs([(graph.tensors[i].shape, graph.tensors[i].dtype)
                              for i in graph.inputs], inputs)
    candidates, _ = candidate_schedules(graph, schedule, sram_bytes)
    plans = {n: plan(graph, s) for n, s in candidates.items()}
    costs = {n: (p.arena_bytes, schedule_macs(graph, p.schedule)) for n, p in plans.items()}
    chosen = plans[pick(schedule, costs, sram_bytes)]
    result = emulate(graph, chosen, inputs)
    run = Execution(result.outputs, chosen.schedule.kind, chosen.arena_bytes, result.high_water,
                    len(chosen.schedule.steps))
    if verify:
        from .oracle import tflm_invoke

        ref = tflm_invoke(str(path), inputs)
        run.tflm_equal = all(np.array_equal(a, b) for a, b in zip(result.outputs, ref))
    return run
