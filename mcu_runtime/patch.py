"""Patch-based scheduling (MCUNetV2): run the memory-hungry first layers tile by tile.

The first blocks of a CNN hold feature maps an order of magnitude larger than the rest.
A patch schedule splits the output of one op (the *split*) into a p×p grid of tiles and
computes the whole *stage* (every op up to the split) once per tile, from only the input
pixels that tile depends on; the stage's output is assembled in one full buffer, and the
remaining ops run layer by layer. Only one tile's intermediates are alive at a time, at the
price of recomputing the overlapping halos.

MCUNetV2's released code fixes the split and p by hand; :func:`search` tries every legal
(split, p), ranks them by the planner's liveness lower bound (cheap: no placement), and
runs the full planner only on candidates that can still win.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops.pad import pad_widths
from tinymcu.mcu_runtime.regions import (
    PAD_KINDS,
    POINTWISE_KINDS,
    WINDOW_KINDS,
    grid,
    input_span,
    window,
)
from tinymcu.mcu_runtime.schedule import Buffer, Region, Schedule, Step, buffer_name, layer_schedule

#: ops a patch stage may contain: each output pixel depends on a bounded input box
STAGE_KINDS = POINTWISE_KINDS | WINDOW_KINDS | PAD_KINDS

#: largest grid the search tries by default (MCUNetV2 uses up to 4–5; more only adds halos)
DEFAULT_MAX_GRID = 8


def _spatial(graph: Graph, tensor: int) -> bool:
    shape = graph.tensors[tensor].shape
    return len(shape) == 4 and shape[0] == 1


def _stage_op_problem(op: Op, graph: Graph) -> str | None:
    """Why ``op`` cannot run on a tile, or None if it can."""
    if op.kind not in STAGE_KINDS:
        return f"{op.kind} needs its whole input"
    if len(op.outputs) != 1 or not _spatial(graph, op.outputs[0]):
        return f"{op.kind} output is not a batch-1 NHWC map"
    out_hw = graph.tensors[op.outputs[0]].shape[1:3]
    for pos, t in enumerate(op.inputs):
        if t < 0:
            continue
        tensor = graph.tensors[t]
        if tensor.is_const:
            if op.kind in WINDOW_KINDS | PAD_KINDS and pos >= 1:
                continue
            # constant operands of pointwise ops must broadcast over H and W
            if any(d != 1 for d in tensor.shape[:-1]):
                return f"{op.kind} has a constant operand that varies over H/W"
            continue
        if not _spatial(graph, t):
            return f"{op.kind} input is not a batch-1 NHWC map"
        if op.kind in POINTWISE_KINDS and tensor.shape[1:3] != out_hw:
            return f"{op.kind} broadcasts over H/W"
    if op.kind == "CONCATENATION" and op.attrs.get("axis", -1) not in (3, -1):
        return "CONCATENATION is not along channels"
    if op.kind in PAD_KINDS:
        widths = pad_widths(op, graph)
        if widths is None:
            return f"{op.kind} has non-constant paddings"
        if widths[0] != (0, 0) or widths[3] != (0, 0):
            return f"{op.kind} pads the batch or channel axis"
    return None


def stage_problem(graph: Graph, split: int) -> str | None:
    """Why ops ``0..split`` cannot form a patch stage, or None if they can.

    A stage must consist of tileable ops, read only graph inputs from outside, and hand
    exactly one tensor (the split output) to the rest of the graph: a tensor that crosses
    the boundary otherwise (e.g. the skip branch of a residual block cut in the middle)
    would be needed whole after the stage, so such splits are excluded.
    """
    if not 0 <= split < len(graph.ops):
        return f"split {split} is not an op index (0..{len(graph.ops) - 1})"
    stage = graph.ops[: split + 1]
    for op in stage:
        problem = _stage_op_problem(op, graph)
        if problem:
            return f"op {op.index} {problem}"
    produced = {t for op in stage for t in op.outputs}
    out = stage[-1].outputs[0]
    for op in stage:
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_const and t not in produced \
                    and t not in graph.inputs:
                return f"op {op.index} reads tensor {t} that is neither a graph input nor staged"
    late = {t for op in graph.ops[split + 1:] for t in op.inputs}
    stage_reads = {t for op in stage for t in op.inputs}
    for t in produced - {out}:
        if t in late or t in graph.outputs:
            return f"tensor {t} crosses the split boundary (e.g. a residual branch)"
        if t not in stage_reads:
            return f"tensor {t} is produced in the stage but never used"
    return None


def split_candidates(graph: Graph) -> list[int]:
    """Op indices whose output can end a patch stage."""
    return [i for i in range(len(graph.ops)) if stage_problem(graph, i) is None]


class _Facts:
    """Per-graph facts every candidate needs, computed once per search."""

    def __init__(self, graph: Graph) -> None:
        from tinymcu.mcu_runtime import ops
        from tinymcu.mcu_runtime.planner import ALIAS_KINDS

        self.graph = graph
        self.acts = {t.index for t in graph.activations()}
        self.nbytes = {t: graph.tensors[t].nbytes for t in self.acts}
        self.pixel_bytes = {t: self.nbytes[t] // (graph.tensors[t].shape[1]
                                                  * graph.tensors[t].shape[2])
                            for t in self.acts if _spatial(graph, t)}
        self.act_inputs = [[t for t in op.inputs if t in self.acts] for op in graph.ops]
        self.io = [[*self.act_inputs[op.index], *(t for t in op.outputs if t in self.acts)]
                   for op in graph.ops]
        self.windows = [window(op, graph) if _stage_op_problem(op, graph) is None else None
                        for op in graph.ops]
        self.kernels = [ops.get(op.kind) for op in graph.ops]
        self.macs_split = [ops.macs_split(op, graph) for op in graph.ops]
        self.macs = [a + b for a, b in self.macs_split]
        self.inplace = [op.kind in ALIAS_KINDS or k.inplace(op, graph)
                        for k, op in zip(self.kernels, graph.ops)]
        self.scratch = [k.scratch_bytes(op, graph) for k, op in zip(self.kernels, graph.ops)]


class _Walk:
    """The regions of one (split, p) candidate, walked per axis.

    A tile's box is the product of its row band and column band, and the window math is
    per axis, so the p² tiles need only 2p one-dimensional walks; MACs and a memory floor
    follow from the band lengths without building any Step.
    """

    def __init__(self, facts: _Facts, split: int, grid_size: int) -> None:
        graph = facts.graph
        self.facts, self.split, self.grid = facts, split, grid_size
        self.stage = graph.ops[: split + 1]
        self.out = self.stage[-1].outputs[0]
        _, height, width, _ = graph.tensors[self.out].shape
        if not 1 <= grid_size <= min(height, width):
            raise TinymcuError(f"a {grid_size}x{grid_size} grid does not fit the "
                               f"{height}x{width} output of op {split}")
        self.local = {t for op in self.stage for t in op.outputs} - {self.out}
        self.tiles = grid(height, width, grid_size)
        bands = [[(r.y0, r.y1) for r in self.tiles[::grid_size]],
                 [(r.x0, r.x1) for r in self.tiles[:grid_size]]]
        # need[axis][tensor][band] = (lo, hi); span[axis][op][band] = (out, in, pad)
        self.need: list[dict[int, list[tuple[int, int]]]] = []
        self.span: list[dict[int, list[tuple[tuple[int, int], tuple[int, int],
                                             tuple[int, int]]]]] = []
        #: why this grid cannot be run, or None (see :meth:`_empty_read`)
        self.problem: str | None = None
        for axis in (0, 1):
            need = {self.out: list(bands[axis])}
            span = {}
            for op in reversed(self.stage):
                rows = []
                for band, (o0, o1) in enumerate(need[op.outputs[0]]):
                    lo, hi, before, after = input_span(facts.windows[op.index], axis, o0, o1)
                    if lo == hi and self.problem is None:
                        self.problem = self._empty_read(op, axis, band)
                    rows.append(((o0, o1), (lo, hi), (before, after)))
                span[op.index] = rows
                for t in facts.act_inputs[op.index]:
                    old = need.get(t)
                    need[t] = [(lo, hi) for _, (lo, hi), _ in rows] if old is None else [
                        (min(a, lo), max(b, hi)) for (a, b), (_, (lo, hi), _) in zip(old, rows)]
            self.need.append(need)
            self.span.append(span)

    def _empty_read(self, op: Op, axis: int, band: int) -> str | None:
        """A tile that lies entirely in a PAD op's border reads zero rows (or columns).

        Reading an empty box out of a whole tensor (the graph input) is fine: the PAD step
        then produces pure padding. Out of a tile buffer it is not: that buffer would be
        empty and its producers would compute nothing, so such grids are refused (they only
        arise when the grid is finer than the border is thick, which saves no memory).
        """
        if not any(t in self.local for t in self.facts.act_inputs[op.index]):
            return None
        what = "row" if axis == 0 else "column"
        return (f"{what} band {band} of op {op.index} ({op.kind}) lies entirely in its "
                f"padding and would need an empty tile of its input")

    def _lengths(self, tensor: int) -> np.ndarray:
        """Bytes of ``tensor``'s tile buffer for every tile, as a p×p array."""
        hy = np.array([b - a for a, b in self.need[0][tensor]], dtype=np.int64)
        wx = np.array([b - a for a, b in self.need[1][tensor]], dtype=np.int64)
        return np.outer(hy, wx) * self.facts.pixel_bytes[tensor]

    def macs(self) -> int:
        """MACs of the schedule: each tile step costs its share of the full op."""
        f, graph = self.facts, self.facts.graph
        total = sum(f.macs[op.index] for op in graph.ops[self.split + 1:])
        for op in self.stage:
            per_output, per_input = f.macs_split[op.index]
            total += self._share(op, per_output, 0, op.outputs[0])
            if per_input:
                total += self._share(op, per_input, 1, op.inputs[0])
        return total

    def _share(self, op: Op, macs: int, which: int, tensor: int) -> int:
        """``macs`` spread over the tiles by the area of each step's output (``which`` 0) or
        input region (1), the way ``ops.step_macs`` charges a single step."""
        shape = self.facts.graph.tensors[tensor].shape
        hy = np.array([r[which][1] - r[which][0] for r in self.span[0][op.index]], np.int64)
        wx = np.array([r[which][1] - r[which][0] for r in self.span[1][op.index]], np.int64)
        return int((macs * np.outer(hy, wx) // (shape[1] * shape[2])).sum())

    def floor(self, count_input: bool) -> int:
        """A cheap lower bound of the planner's liveness bound for this candidate.

        At every step the step's own inputs, output and scratch are alive (an in-place op's
        output may share input 0's memory: count the larger of the two); in every tile but
        the first and the last, the input image (if counted) and the stage output being
        assembled are alive too, read or not.
        """
        f, graph, p = self.facts, self.facts.graph, self.grid

        def whole(t: int) -> int:
            return 0 if t in graph.inputs and not count_input else f.nbytes[t]

        def size(t: int) -> np.ndarray | int:
            return self._lengths(t) if t in self.local else whole(t)

        middle = np.zeros((p, p), dtype=np.int64)
        middle.flat[1:p * p - 1] = 1
        held = {*graph.inputs, self.out}
        best = 0
        for op in self.stage:
            ins, outs = f.act_inputs[op.index], op.outputs
            step = sum(size(t) for t in set(ins))
            if f.scratch[op.index] and ins and op.kind == "CONV_2D":
                # a window conv's im2col columns: the same bytes on every tile
                step = step + f.kernels[op.index].scratch_bytes(op, graph)
            elif f.scratch[op.index] and ins:
                # the other stage ops with scratch (in-place depthwise, EXPAND_DEPTHWISE)
                # need one channel of the input region they read. That region is at least
                # the output tile, so one output-tile channel keeps this a lower bound.
                step = step + self._lengths(outs[0]) // graph.tensors[outs[0]].shape[-1]
            if f.inplace[op.index] and ins:
                step = step - size(ins[0]) + np.maximum(size(ins[0]), size(outs[0]))
            else:
                step = step + size(outs[0])
            idle = sum(whole(t) for t in held - {*ins, *outs})
            best = max(best, int(np.max(step + middle * idle)))
        for op in graph.ops[self.split + 1:]:
            ins = f.act_inputs[op.index]
            act_outs = [t for t in op.outputs if t in f.acts]
            step = sum(whole(t) for t in set(ins)) + f.scratch[op.index]
            both = sum(whole(t) for t in act_outs)
            if f.inplace[op.index] and ins and act_outs:
                step += max(0, both - whole(ins[0]))
            else:
                step += both
            best = max(best, step)
        return best

    def schedule(self) -> Schedule:
        f = self.facts
        buffers = {buffer_name(t): Buffer(buffer_name(t), t, f.nbytes[t])
                   for t in sorted(f.acts - self.local)}
        steps: list[Step] = []
        p = self.grid
        for k in range(p * p):
            r, c = divmod(k, p)
            names = {}
            for t in self.local:
                (y0, y1), (x0, x1) = self.need[0][t][r], self.need[1][t][c]
                box = Region(y0, y1, x0, x1)
                names[t] = f"t{t}@{k}"
                buffers[names[t]] = Buffer(names[t], t, box.h * box.w * f.pixel_bytes[t], box)
            for op in self.stage:
                (oy, iy, py), (ox, ix, px) = self.span[0][op.index][r], self.span[1][op.index][c]
                io = {t: names.get(t) or buffer_name(t) for t in f.io[op.index]}
                pad = None if f.windows[op.index] is None else (*py, *px)
                steps.append(Step(op.index, io, Region(*oy, *ox), Region(*iy, *ix), pad))
        for op in f.graph.ops[self.split + 1:]:
            steps.append(Step(op.index, {t: buffer_name(t) for t in f.io[op.index]}))
        info = {"split": self.split, "grid": p, "stage_output": self.out,
                "tiles": [[r.y0, r.y1, r.x0, r.x1] for r in self.tiles]}
        return Schedule("patch", steps, buffers, info)


def patch_schedule(graph: Graph, split: int, grid_size: int) -> Schedule:
    """Run ops ``0..split`` tile by tile over a ``grid_size``² grid of the split output.

    For each tile the needed box of every tensor is the union of what its consumers in
    that tile read (so a residual branch carries the larger halo of the two); each stage
    tensor gets one buffer per tile ("t{idx}@{tile}") holding exactly that box, the stage
    output is one full buffer written tile by tile, the graph input stays whole.
    """
    problem = stage_problem(graph, split)
    if problem:
        raise TinymcuError(f"no patch stage ends at op {split}: {problem}")
    walk = _Walk(_Facts(graph), split, grid_size)
    if walk.problem:
        raise TinymcuError(f"no {grid_size}x{grid_size} patch schedule ends at op {split}: "
                           f"{walk.problem}")
    return walk.schedule()


def schedule_macs(graph: Graph, schedule: Schedule) -> int:
    """Multiply-accumulates of a schedule: a tile step costs its share of the full op."""
    from tinymcu.mcu_runtime.ops import step_macs

    return sum(step_macs(graph, step) for step in schedule.steps)


def liveness_peak(graph: Graph, schedule: Schedule) -> int:
    """The planner's liveness lower bound for ``schedule`` (see ``planner.liveness_bound``)."""
    from tinymcu.mcu_runtime import planner

    return planner.liveness_bound(graph, schedule)


def without_inputs(graph: Graph, schedule: Schedule) -> Schedule:
    """The schedule planned "without the input image": :func:`streamed_schedule`.

    MCUNetV2 and TinyEngine count activation memory without the input image (it is
    streamed from the camera or flash patch by patch) and leave it out entirely; tinymcu
    counts what streaming really keeps in SRAM — each step's input tile, for that step —
    so the figure is the arena the generated code runs in (``codegen --stream``), not an
    accounting convention. It is never below the convention's figure, and equal to it
    whenever no input tile is live at the peak step.
    """
    return streamed_schedule(graph, schedule)


def streamed_schedule(graph: Graph, schedule: Schedule) -> Schedule:
    """``schedule`` with the graph input streamed.

    Every step that reads a graph input gets its own tile buffer ``in@{step}`` holding just
    the rows and columns it reads (its ``in_region``, or the whole tensor for a step on
    the whole input), marked ``stream``: the caller's read function fills it right before
    that step (``tinymcu_run_streamed``, the emulator likewise), so it lives for that step
    only. The whole input buffer is gone. Planned, the arena is what the firmware really
    needs; it exceeds the input-free count of MCUNetV2 only by the input tiles that are
    live at the peak step (often none: the first stage's tiles sit in memory that is free
    while they are read).
    """
    inputs = set(graph.inputs)
    buffers = {n: b for n, b in schedule.buffers.items() if b.tensor not in inputs}
    steps = []
    for i, step in enumerate(schedule.steps):
        io = dict(step.io)
        in_region = step.in_region
        for t in sorted(set(io) & inputs):
            tensor = graph.tensors[t]
            spatial = len(tensor.shape) == 4 and tensor.shape[0] == 1
            if step.in_region is not None and not spatial:
                raise TinymcuError(f"step {i} tiles input tensor {t}, which is not a batch-1 "
                                   f"NHWC map")
            region = in_region or (Region(0, tensor.shape[1], 0, tensor.shape[2]) if spatial
                                   else None)
            nbytes = (region.h * region.w * tensor.shape[3] * np.dtype(tensor.dtype).itemsize
                      if region is not None else tensor.nbytes)
            name = f"in@{i}"
            buffers[name] = Buffer(name, t, nbytes, region, stream=True)
            io[t] = name
        steps.append(replace(step, io=io))
    info = {**schedule.info, "streamed": True}
    return Schedule(schedule.kind, steps, buffers, info)


def arena_bytes(graph: Graph, schedule: Schedule, count_input: bool = True) -> int:
    """The planner's arena for ``schedule``, optionally without the input image."""
    from tinymcu.mcu_runtime.planner import plan

    return plan(graph, schedule if count_input else without_inputs(graph, schedule)).arena_bytes


@dataclass
class Candidate:
    """One (split, grid) point of the search.

    ``floor`` is the cheap bound every candidate gets; ``estimate`` (the planner's exact
    liveness bound) and ``peak`` (the planned arena) are None unless the search needed them.
    """

    split: int
    grid: int
    macs: int
    floor: int
    estimate: int | None = None
    peak: int | None = None


@dataclass
class SearchResult:
    """The chosen patch schedule and the numbers that justify it."""

    schedule: Schedule
    split: int
    grid: int
    peak: int
    macs: int
    layer_peak: int
    layer_macs: int
    seconds: float
    count_input: bool
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """Extra MACs spent recomputing halos, as a fraction of the per-layer MACs."""
        return self.macs / self.layer_macs - 1.0

    @property
    def planned(self) -> int:
        return sum(c.peak is not None for c in self.candidates)


def candidates(graph: Graph, count_input: bool = True, max_grid: int = DEFAULT_MAX_GRID,
               facts: _Facts | None = None) -> list[tuple[Candidate, _Walk]]:
    """Every legal (split, p) with 2 ≤ p ≤ ``max_grid``, with its MACs and cheap floor."""
    facts = facts or _Facts(graph)
    found = []
    for split in split_candidates(graph):
        _, height, width, _ = graph.tensors[graph.ops[split].outputs[0]].shape
        for p in range(2, min(max_grid, height, width) + 1):
            walk = _Walk(facts, split, p)
            if walk.problem:
                continue
            found.append((Candidate(split, p, walk.macs(), walk.floor(count_input)), walk))
    return found


def search(graph: Graph, objective: str = "peak", budget: int | None = None,
           count_input: bool = True, max_grid: int = DEFAULT_MAX_GRID,
           max_overhead: float | None = None, plan_limit: int = 12) -> SearchResult:
    """Search every legal (split, p) for the best patch schedule.

    ``objective="peak"`` minimises the planned arena (MACs break ties); ``"macs"``
    minimises MACs among schedules whose arena fits ``budget`` bytes. ``max_overhead``
    (e.g. 0.15) drops candidates whose halo recomputation costs more than that fraction of
    the per-layer MACs. ``count_input=False`` plans without the input image (the
    MCUNetV2/TinyEngine convention).

    Three tiers keep this fast: every candidate gets MACs and a floor from per-axis band
    lengths (no steps built); in order of promise, candidates whose floor can still win are
    built and get the planner's exact liveness bound; only those whose bound can still win
    are placed by the planner (at most ``plan_limit``). For "peak" the walk stops once the
    floor reaches the best arena found; for "macs" at the first fit in MAC order.
    """
    if objective not in ("peak", "macs"):
        raise TinymcuError(f"unknown search objective {objective!r} (peak or macs)")
    if objective == "macs" and budget is None:
        raise TinymcuError("objective 'macs' needs an SRAM budget")
    start = time.perf_counter()
    facts = _Facts(graph)
    layer_peak = arena_bytes(graph, layer_schedule(graph), count_input)
    layer_macs = sum(facts.macs)
    found = candidates(graph, count_input, max_grid, facts)
    if not found:
        raise TinymcuError("no patch schedule applies: the first op already needs its whole "
                           "input, or every split cuts a branch")
    allowed = found
    if max_overhead is not None:
        allowed = [f for f in found if f[0].macs <= layer_macs * (1 + max_overhead)]
        if not allowed:
            raise OverBudget(f"every patch schedule recomputes more than {max_overhead:.0%} "
                             f"extra MACs")
    if objective == "peak":
        order = sorted(allowed, key=lambda f: (f[0].floor, f[0].macs))
    else:
        # "macs" always has a budget (checked above); the test narrows it for the checker
        order = sorted((f for f in allowed if budget is not None and f[0].floor <= budget),
                       key=lambda f: (f[0].macs, f[0].floor))
    # the best candidate so far, its schedule and its planned arena
    best: tuple[Candidate, Schedule, int] | None = None
    plans = 0
    for cand, walk in order:
        if objective == "peak" and best is not None and \
                (cand.floor, cand.macs) >= (best[2], best[0].macs):
            break
        sched = walk.schedule()
        counted = sched if count_input else without_inputs(graph, sched)
        cand.estimate = liveness_peak(graph, counted)
        if objective == "peak":
            if best is not None and (cand.estimate, cand.macs) >= (best[2], best[0].macs):
                continue
        elif budget is not None and cand.estimate > budget:
            continue
        if plans == plan_limit:
            break
        plans += 1
        peak = cand.peak = arena_bytes(graph, sched, count_input)
        if objective == "peak":
            if best is None or (peak, cand.macs) < (best[2], best[0].macs):
                best = (cand, sched, peak)
        elif budget is not None and peak <= budget:
            best = (cand, sched, peak)
            break
    if best is None:
        raise OverBudget(f"no patch schedule fits {budget} bytes (smallest floor "
                         f"{min(f[0].floor for f in allowed)} bytes)")
    cand, sched, peak = best
    sched.info.update({"peak": peak, "macs": cand.macs, "count_input": count_input})
    return SearchResult(sched, cand.split, cand.grid, peak, cand.macs, layer_peak,
                        layer_macs, time.perf_counter() - start, count_input,
                        [f[0] for f in found])


def auto_schedule(graph: Graph, budget: int) -> Schedule:
    """Per-layer if it fits ``budget`` bytes, else the cheapest patch schedule that fits.

    When nothing fits, the schedule with the smallest arena is returned so the caller's
    report shows how far over budget the best option is.
    """
    layer = layer_schedule(graph)
    layer_peak = arena_bytes(graph, layer)
    if layer_peak <= budget:
        return layer
    try:
        return search(graph, objective="macs", budget=budget).schedule
    except OverBudget:
        pass
    except TinymcuError:
        return layer
    best = search(graph, objective="peak")
    return best.schedule if best.peak < layer_peak else layer
