"""Execute a planned schedule inside one simulated SRAM arena — the proof of the plan.

The arena is a single ``np.uint8`` array of ``plan.arena_bytes``. Every buffer of the
schedule is a view at ``plan.offsets[name]``; kernels read their activation inputs from those
views and the results are written back into them, so tensors that share memory really share
it. Before every step, each arena byte that is not part of a buffer live at that step is
overwritten with pseudo-random junk, and the step's scratch buffer ``scratch@{i}`` is filled
with junk before and after the step (the C kernel would scribble there). A plan that lets two
live buffers overlap therefore corrupts data and the outputs stop matching TFLM, instead of
passing by luck because a stale copy happened to survive.

Liveness is recomputed here from the schedule (first step touching a buffer to the last;
graph inputs from step 0, graph outputs to the end) rather than taken from the plan, so the
emulator checks the planner instead of trusting it.

State: the buffers of state tensors (``Tensor.is_variable``) live over the whole schedule.
``emulate`` loads them from ``state`` (default: reset, as TFLM's ``ResetVariableTensors``)
before step 0 and returns their final bytes in ``EmulationResult.state``, so a caller runs
consecutive invocations of a stateful model (SVDF, LSTM) by handing each run's state to the
next (:func:`emulate_sequence`), exactly as TFLM keeps its variables between ``Invoke`` calls.
A stateful op's ``run`` returns its new state after its outputs; it is written back into the
state buffer at once.
=======
Streamed inputs (``patch.streamed_schedule``): a ``stream`` buffer is filled from the input
array right before the one step that reads it, as the C runtime's read function does.

Patch steps: a buffer with a ``region`` holds that H×W box of its tensor; the step reads its
``in_region`` out of each activation input buffer, runs the kernel with the explicit ``pad``,
and writes the ``out_region`` box of the output into the output buffer (a tile buffer or the
full tensor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.planner import buffer_lifetimes
from tinymcu.mcu_runtime.schedule import Buffer, Region, Schedule


@dataclass
class EmulationResult:
    """Graph outputs, and how much of the arena the run actually touched."""

    outputs: list[np.ndarray]
    high_water: int
    arena_bytes: int
    steps: int
    #: per step, the highest arena byte of the buffers (and scratch) live at that step
    step_high_water: list[int] = field(default_factory=list)
    #: state tensor → its value after the run (what the next invocation starts from)
    state: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class UnsharedPlan:
    """Every buffer (and scratch) at its own offset, nothing reused: the no-planning baseline.

    Lets the kernels be checked independently of the planner, and is the arena a runtime
    without memory planning would need.
    """

    schedule: Schedule
    offsets: dict[str, int]
    arena_bytes: int


def unshared_plan(graph: Graph, schedule: Schedule) -> UnsharedPlan:
    offsets: dict[str, int] = {}
    end = 0
    for name, buf in schedule.buffers.items():
        offsets[name] = end
        end += buf.nbytes
    for i, step in enumerate(schedule.steps):
        n = ops.step_scratch(graph, step)
        if n:
            offsets[f"scratch@{i}"] = end
            end += n
    return UnsharedPlan(schedule, offsets, end)


class _Arena:
    """The byte array plus typed views of buffers at their planned offsets."""

    def __init__(self, graph: Graph, plan: Any):
        self.graph = graph
        self.bytes = np.zeros(int(plan.arena_bytes), dtype=np.uint8)
        self.offsets: dict[str, int] = dict(plan.offsets)
        self.touched = 0

    def span(self, name: str, nbytes: int) -> tuple[int, int]:
        if name not in self.offsets:
            raise TinymcuError(f"the plan has no offset for buffer {name!r}")
        off = int(self.offsets[name])
        if off < 0 or off + nbytes > self.bytes.size:
            raise TinymcuError(f"buffer {name!r} [{off}, {off + nbytes}) lies outside the "
                               f"{self.bytes.size}-byte arena")
        return off, off + nbytes

    def view(self, buf: Buffer) -> np.ndarray:
        t = self.graph.tensors[buf.tensor]
        shape = t.shape if buf.region is None else (t.shape[0], buf.region.h, buf.region.w,
                                                    t.shape[3])
        dtype = np.dtype(t.dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes != buf.nbytes:
            raise TinymcuError(f"buffer {buf.name!r} has {buf.nbytes} bytes but holds "
                               f"{nbytes} bytes of tensor {buf.tensor}")
        lo, hi = self.span(buf.name, nbytes)
        self.touched = max(self.touched, hi)
        return self.bytes[lo:hi].view(dtype).reshape(shape)


def _box(arr: np.ndarray, holder: Region | None, box: Region) -> tuple[slice, slice]:
    """Slices selecting tensor box ``box`` from an array that holds box ``holder``."""
    y0, x0 = (holder.y0, holder.x0) if holder is not None else (0, 0)
    if holder is not None and not (holder.y0 <= box.y0 and box.y1 <= holder.y1
                                   and holder.x0 <= box.x0 and box.x1 <= holder.x1):
        raise TinymcuError(f"region {box} is not inside the buffer's region {holder}")
    return slice(box.y0 - y0, box.y1 - y0), slice(box.x0 - x0, box.x1 - x0)


def _whole(bufs: dict[str, Buffer], t: int, what: str) -> str:
    name = next((n for n, b in bufs.items() if b.tensor == t and b.region is None), None)
    if name is None:
        raise TinymcuError(f"the schedule has no whole buffer for {what} {t}")
    return name


def emulate(graph: Graph, plan: Any, inputs: list[np.ndarray], seed: int = 0,
            junk: bool = True, state: dict[int, np.ndarray] | None = None) -> EmulationResult:
    """Run ``plan.schedule`` of ``graph`` on ``inputs`` inside an arena laid out by ``plan``.

    ``plan`` is any object with ``schedule``, ``offsets`` and ``arena_bytes`` (the planner's
    :class:`~.planner.Plan`). ``junk=False`` disables the junk fill (only useful to show
    that a corrupting plan is caught *because* of it). ``state`` holds the value of each
    state tensor at the start (a previous run's ``EmulationResult.state``); None resets it.
    """
    schedule: Schedule = plan.schedule
    if len(inputs) != len(graph.inputs):
        raise TinymcuError(f"the model has {len(graph.inputs)} input(s), got {len(inputs)}")
    arena = _Arena(graph, plan)
    junk_source = _Junk(arena.bytes.size, seed)
    lifetimes = buffer_lifetimes(graph, schedule)
    bufs = schedule.buffers

    images: dict[int, np.ndarray] = {}
    for t, x in zip(graph.inputs, inputs, strict=True):
        tensor = graph.tensors[t]
        x = np.asarray(x)
        if x.size != tensor.size:
            raise TinymcuError(f"input tensor {t} needs shape {tensor.shape}, got {x.shape}")
        if x.dtype != np.dtype(tensor.dtype):
            raise TinymcuError(f"input tensor {t} is {tensor.dtype}, got {x.dtype}")
        images[t] = x.astype(tensor.dtype).reshape(tensor.shape)
        if any(b.tensor == t and b.stream for b in bufs.values()):
            continue  # streamed: each tile is read from the caller's image before its step
        name = next((n for n, b in bufs.items() if b.tensor == t and b.region is None), None)
        if name is None:
            raise TinymcuError(f"the schedule has no whole buffer for graph input {t}")
        arena.view(bufs[name])[...] = images[t]
    variables = graph.variables()
    for t in variables:
        start = graph.tensors[t].reset_array() if state is None or t not in state else state[t]
        arena.view(bufs[_whole(bufs, t, "state tensor")])[...] = np.asarray(start).reshape(
            graph.tensors[t].shape)

    step_high: list[int] = []
    for i, step in enumerate(schedule.steps):
        op = graph.ops[step.op]
        kernel = ops.get(op.kind)
        scratch = f"scratch@{i}"
        scratch_n = ops.step_scratch(graph, step)
        live = _live_spans(arena, bufs, lifetimes, i)
        if scratch_n and scratch in arena.offsets:
            live.append(arena.span(scratch, scratch_n))
        step_high.append(max((hi for _, hi in live), default=0))
        if junk:
            _junk_fill(arena, live, junk_source)
            if scratch_n and scratch in arena.offsets:
                lo, hi = arena.span(scratch, scratch_n)
                arena.bytes[lo:hi] = junk_source.take(hi - lo)
        for name in step.io.values():
            buf = bufs[name]
            if buf.stream:  # the read function's rows, after the junk fill like the C
                src = images[buf.tensor]
                if buf.region is not None:
                    src = src[:, buf.region.y0:buf.region.y1, buf.region.x0:buf.region.x1, :]
                arena.view(buf)[...] = src
        args: list[np.ndarray | None] = []
        for t in op.inputs:
            if t < 0:
                args.append(None)
            elif graph.tensors[t].is_const:
                args.append(graph.tensors[t].data)
            else:
                if t not in step.io:
                    raise TinymcuError(f"step {i} (op {op.index} {op.kind}) has no buffer for "
                                       f"input tensor {t}")
                buf = bufs[step.io[t]]
                arr = arena.view(buf)
                if step.in_region is not None:
                    ys, xs = _box(arr, buf.region, step.in_region)
                    arr = arr[:, ys, xs, :]
                args.append(arr.copy())
        results = kernel.run(op, graph, args, pad=step.pad)
        state_in = [op.inputs[k] for k in kernel.state_inputs(op)]
        if len(results) != len(op.outputs) + len(state_in):
            raise TinymcuError(f"step {i} (op {op.index} {op.kind}) returned {len(results)} "
                               f"arrays for {len(op.outputs)} outputs and {len(state_in)} "
                               "state tensors")
        for t, y in zip(state_in, results[len(op.outputs):], strict=True):
            arena.view(bufs[step.io[t]])[...] = y.reshape(graph.tensors[t].shape)
        for t, y in zip(op.outputs, results[:len(op.outputs)], strict=True):
            buf = bufs[step.io[t]]
            dst = arena.view(buf)
            if step.out_region is not None:
                ys, xs = _box(dst, buf.region, step.out_region)
                dst = dst[:, ys, xs, :]
            if dst.shape != y.shape:
                raise TinymcuError(f"step {i} (op {op.index} {op.kind}) produced shape "
                                   f"{y.shape} for a destination of shape {dst.shape}")
            dst[...] = y
        if scratch_n and scratch in arena.offsets:
            lo, hi = arena.span(scratch, scratch_n)
            arena.touched = max(arena.touched, hi)
            if junk:
                arena.bytes[lo:hi] = junk_source.take(hi - lo)

    outputs = [arena.view(bufs[_whole(bufs, t, "graph output")]).copy() for t in graph.outputs]
    final = {t: arena.view(bufs[_whole(bufs, t, "state tensor")]).copy() for t in variables}
    return EmulationResult(outputs, arena.touched, int(arena.bytes.size), len(schedule.steps),
                           step_high, final)


def emulate_sequence(graph: Graph, plan: Any, input_sets: list[list[np.ndarray]],
                     seed: int = 0) -> list[EmulationResult]:
    """Consecutive invocations from a reset state, each starting from the state the one
    before left (what TFLM computes when ``Invoke`` runs again without a reset)."""
    out: list[EmulationResult] = []
    state: dict[int, np.ndarray] | None = None
    for k, inputs in enumerate(input_sets):
        out.append(emulate(graph, plan, inputs, seed=seed + k, state=state))
        state = out[-1].state
    return out


def _live_spans(arena: _Arena, bufs: dict[str, Buffer], lifetimes: dict[str, tuple[int, int]],
                step: int) -> list[tuple[int, int]]:
    """[lo, hi) byte ranges of the buffers live at ``step``."""
    return [arena.span(name, bufs[name].nbytes) for name, (first, last) in lifetimes.items()
            if first <= step <= last]


class _Junk:
    """Pseudo-random bytes: one seeded pool, read at a fresh random offset each time (cheap
    for schedules with hundreds of patch steps, and still different at every step)."""

    def __init__(self, size: int, seed: int):
        self.rng = np.random.default_rng(seed)
        self.pool = self.rng.integers(0, 256, 2 * size + 1, dtype=np.uint8)

    def take(self, n: int) -> np.ndarray:
        start = int(self.rng.integers(0, self.pool.size - n + 1))
        return self.pool[start:start + n]


def _junk_fill(arena: _Arena, live: list[tuple[int, int]], junk: _Junk) -> None:
    """Overwrite every arena byte outside the ``live`` ranges with junk."""
    keep = np.zeros(arena.bytes.size, dtype=bool)
    for lo, hi in live:
        keep[lo:hi] = True
    np.copyto(arena.bytes, junk.take(arena.bytes.size), where=~keep)
