"""The memory planner: buffer lifetimes from a schedule, in-place merges, offsets in one arena.

Every activation buffer of a schedule gets a byte offset in a single SRAM arena such that
no two buffers that are alive at the same step overlap. The emulator then executes the
model inside an arena of exactly ``Plan.arena_bytes`` at these offsets, so a wrong plan
corrupts live data and shows up as a mismatch with TFLM: the emulator is the planner's proof.

Lifetimes. A buffer lives from the first step that writes it to the last step that reads
it (inclusive); graph inputs live from step 0, graph outputs to the last step. A state
tensor (``Tensor.is_variable``: SVDF/LSTM state) lives over the whole schedule, so no other
buffer ever overlaps it and its bytes survive from one invocation to the next, as TFLM
keeps variables in their own persistent allocation; it is never merged in place. Two buffers
*conflict* when their lifetimes share a step, so an op's input and output never share
memory unless the op runs in place.

In place. If the op's kernel says its output may occupy activation input 0's memory
(``Kernel.inplace``, e.g. elementwise ops and TinyEngine-style depthwise convolution with a
one-channel temporary), input 0 is read for the last time at this step, and the output is
no larger, the two buffers share one *slot* (never one holding a graph output, which must
survive to the end). RESHAPE and SQUEEZE are pure aliases (same bytes, new shape) under
the same rule. A graph input may be overwritten once it has been
consumed: the caller hands the input over when inference starts, exactly as TFLM reuses
input memory after its last use. Kernel scratch memory is a buffer ``scratch@{step}`` that
lives only during its step.

Offsets. ``greedy_by_size`` is TFLM's GreedyMemoryPlanner (largest first, each at the
lowest offset free of every time-overlapping buffer already placed) for reference.
``best`` (the default) runs several orderings with first-fit and best-fit placement, keeps
the smallest, then a short seeded local search over the order while the arena is above the
liveness lower bound: deterministic, and usually at the bound on the models we checked.

Alignment: 4 bytes for our runtime (word loads in the int8 kernels and int32 scratch need
nothing more on Cortex-M; TFLM's 16 wastes up to 12 bytes per buffer), 16 for the ``tflm``
target (TFLM's ``MicroArenaBufferAlignment``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.schedule import Schedule

TARGETS = ("tinymcu", "tflm", "tflm-cmsis-nn")
STRATEGIES = ("best", "greedy_by_size", "first_fit_by_size", "best_fit_by_area")

#: byte alignment of every buffer, per target (see the module docstring)
ALIGNMENT = {"tinymcu": 4, "tflm": 16, "tflm-cmsis-nn": 16}

#: ops whose output is the input's bytes under a new shape
ALIAS_KINDS = ops.alias_kinds()

#: how many order perturbations ``best`` tries when it is not yet at the lower bound
SEARCH_ITERS = 48


def align_up(n: int, a: int) -> int:
    return -(-n // a) * a


@dataclass(frozen=True)
class Interval:
    """A block to place: ``size`` bytes alive from step ``first`` to ``last`` inclusive."""

    name: str
    size: int
    first: int
    last: int

    def overlaps(self, other: Interval) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class Plan:
    """Where every buffer of ``schedule`` lives in the arena.

    ``offsets``/``sizes``/``lifetimes`` cover every schedule buffer and every kernel scratch
    buffer ``scratch@{step}``. Buffers in one in-place slot share an offset; ``slots`` maps
    each buffer to the name of its slot's first buffer. ``live_bytes[i]`` is the bytes of
    slots alive at step ``i``; ``lower_bound`` their maximum, which no placement can beat.
    For the ``tflm`` targets, ``persistent_bytes`` is what TFLM's arena needs beyond the
    planned head: its persistent tail plus any temporary allocation (Prepare, planning)
    that peaks above the two; ``arena_bytes`` and ``lower_bound`` include it, so
    ``arena_bytes`` is the smallest arena TFLM allocates in.
    """

    schedule: Schedule
    offsets: dict[str, int]
    sizes: dict[str, int]
    lifetimes: dict[str, tuple[int, int]]
    arena_bytes: int
    lower_bound: int
    live_bytes: list[int]
    strategy: str
    target: str = "tinymcu"
    alignment: int = 4
    slots: dict[str, str] = field(default_factory=dict)
    persistent_bytes: int = 0

    @property
    def ratio(self) -> float:
        """Arena over the liveness lower bound (1.0 = optimal)."""
        return self.arena_bytes / self.lower_bound if self.lower_bound else 1.0

    @property
    def planned_bytes(self) -> int:
        """The part of the arena the buffers occupy (TFLM's "head")."""
        return self.arena_bytes - self.persistent_bytes


# ----------------------------------------------------------------------------------------------
# Offset assignment over intervals (pure; the property tests drive these directly).
# ----------------------------------------------------------------------------------------------

def _place(order: Sequence[Interval], fit: str) -> dict[str, int]:
    """Place intervals in ``order``; ``fit`` "first" takes the lowest gap, "best" the tightest."""
    placed: list[tuple[int, int, Interval]] = []
    offsets: dict[str, int] = {}
    for it in order:
        if it.size == 0:
            offsets[it.name] = 0
            continue
        busy = sorted((o, e) for o, e, other in placed if other.overlaps(it))
        top = 0
        chosen = None
        best_gap = None
        for o, e in busy:
            gap = o - top
            if gap >= it.size:
                if fit == "first":
                    chosen = top
                    break
                if best_gap is None or gap < best_gap:
                    chosen, best_gap = top, gap
            top = max(top, e)
        offset = top if chosen is None else chosen
        offsets[it.name] = offset
        placed.append((offset, offset + it.size, it))
    return offsets


def arena_size(intervals: Sequence[Interval], offsets: dict[str, int]) -> int:
    return max((offsets[it.name] + it.size for it in intervals), default=0)


def live_profile(intervals: Sequence[Interval], n_steps: int) -> list[int]:
    """Bytes alive at each step."""
    delta = [0] * (n_steps + 1)
    for it in intervals:
        delta[it.first] += it.size
        delta[it.last + 1] -= it.size
    live, out = 0, []
    for d in delta[:n_steps]:
        live += d
        out.append(live)
    return out


def lower_bound(intervals: Sequence[Interval]) -> int:
    """Max over steps of the bytes alive: no placement without overlap can go below it."""
    n = max((it.last for it in intervals), default=-1) + 1
    return max(live_profile(intervals, n), default=0)


def greedy_by_size(intervals: Sequence[Interval]) -> dict[str, int]:
    """TFLM's GreedyMemoryPlanner: largest first, each at the lowest fitting offset.

    ``intervals`` are in the order TFLM adds them (tensor index, then scratch requests).
    TFLM fills its sort array from the back and bubble-sorts it stably, so equal sizes end
    up in *reverse* insertion order; we do the same, which makes the arena match TFLM's
    byte for byte (VWW-96: 73,728 B; in insertion order it would be 64,512 B).
    """
    return _place(sorted(reversed(intervals), key=lambda it: -it.size), "first")


_ORDERS: dict[str, Callable[[Interval], tuple]] = {
    "size": lambda it: (-it.size, it.first),
    "area": lambda it: (-it.size * (it.last - it.first + 1), -it.size),
    "length": lambda it: (-(it.last - it.first), -it.size),
    "first_use": lambda it: (it.first, -it.size),
    "last_use": lambda it: (-it.last, -it.size),
}


def best_placement(intervals: Sequence[Interval], iters: int = SEARCH_ITERS,
                   seed: int = 0) -> dict[str, int]:
    """Smallest arena over several orderings × {first, best} fit, then a seeded local search.

    Why a search at all: greedy orderings are near-optimal on chains but residual branches
    and scratch buffers leave holes; moving one block earlier in the order often closes them.
    The search stops as soon as the liveness lower bound is reached.
    """
    bound = lower_bound(intervals)
    candidates: list[tuple[int, list[Interval], dict[str, int], str]] = []
    for key in _ORDERS.values():
        order = sorted(intervals, key=key)
        for fit in ("first", "best"):
            offs = _place(order, fit)
            candidates.append((arena_size(intervals, offs), order, offs, fit))
    # min() keeps the first of equal sizes: the ordering listed first wins a tie
    best_size, best_order, best_offsets, best_fit = min(candidates, key=lambda c: c[0])
    rng = random.Random(seed)
    n = len(best_order)
    for _ in range(iters if n > 1 else 0):
        if best_size <= bound:
            break
        i, j = sorted(rng.sample(range(n), 2))
        order = best_order[:i] + [best_order[j]] + best_order[i:j] + best_order[j + 1:]
        offs = _place(order, best_fit)
        size = arena_size(intervals, offs)
        if size <= best_size:
            best_order, best_offsets, best_size = order, offs, size
    return best_offsets


def place(intervals: Sequence[Interval], strategy: str = "best") -> dict[str, int]:
    """Offsets for ``intervals`` by ``strategy`` (one of :data:`STRATEGIES`)."""
    if strategy == "best":
        return best_placement(intervals)
    if strategy == "greedy_by_size":
        return greedy_by_size(intervals)
    if strategy == "first_fit_by_size":
        return _place(sorted(intervals, key=_ORDERS["size"]), "first")
    if strategy == "best_fit_by_area":
        return _place(sorted(intervals, key=_ORDERS["area"]), "best")
    raise TinymcuError(f"unknown planner strategy {strategy!r}; "
                       f"choose from {', '.join(STRATEGIES)}")


# ----------------------------------------------------------------------------------------------
# From a schedule to intervals.
# ----------------------------------------------------------------------------------------------

def buffer_lifetimes(graph: Graph, schedule: Schedule) -> dict[str, tuple[int, int]]:
    """(first, last) step touching each schedule buffer the steps use.

    The first touch is a write (or a read of a graph input) and the last a read (or the
    final write of a buffer nobody reads). Graph-input buffers start at step 0 (streamed
    input tiles, filled right before their one step, do not) and graph-output buffers end
    at the last step.
    """
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, step in enumerate(schedule.steps):
        for b in step.io.values():
            first.setdefault(b, i)
            last[b] = i
    n = len(schedule.steps)
    state = set(graph.variables())
    for name, buf in schedule.buffers.items():
        if buf.tensor in graph.inputs and name in first and not buf.stream:
            first[name] = 0
        if buf.tensor in graph.outputs:
            first.setdefault(name, 0)
            last[name] = n - 1
        if buf.tensor in state and name in first:
            first[name], last[name] = 0, n - 1
    return {b: (first[b], last[b]) for b in first}


class _Slots:
    """Union of buffers sharing memory (in-place), with the slot's lifetime and size."""

    def __init__(self, lifetimes: dict[str, tuple[int, int]], sizes: dict[str, int]):
        self.root = {b: b for b in lifetimes}
        self.span = dict(lifetimes)
        self.size = dict(sizes)

    def find(self, b: str) -> str:
        while self.root[b] != b:
            b = self.root[b]
        return b

    def merge(self, keep: str, into: str) -> None:
        """Put buffer ``into``'s slot in ``keep``'s slot."""
        a, b = self.find(keep), self.find(into)
        self.root[b] = a
        (f1, l1), (f2, l2) = self.span[a], self.span.pop(b)
        self.span[a] = (min(f1, f2), max(l1, l2))
        self.size[a] = max(self.size[a], self.size.pop(b))


def _runs_in_place(op: Op, graph: Graph) -> bool:
    return op.kind in ALIAS_KINDS or ops.get(op.kind).inplace(op, graph)


def _inplace_slots(graph: Graph, schedule: Schedule, lifetimes: dict[str, tuple[int, int]],
                   sizes: dict[str, int]) -> _Slots:
    slots = _Slots(lifetimes, sizes)
    graph_inputs = {b for b, buf in schedule.buffers.items() if buf.tensor in graph.inputs}
    state = set(graph.variables())
    graph_inputs |= {b for b, buf in schedule.buffers.items() if buf.tensor in state}
    graph_outputs = {b for b, buf in schedule.buffers.items()
                     if (buf.tensor in graph.outputs or buf.tensor in state) and b in lifetimes}
    for i, step in enumerate(schedule.steps):
        op = graph.ops[step.op]
        if not op.inputs or not op.outputs:
            continue
        k = ops.get(op.kind).inplace_source(op)
        if k >= len(op.inputs):
            continue
        src, dst = step.io.get(op.inputs[k]), step.io.get(op.outputs[0])
        if src is None or dst is None or src == dst or dst in graph_inputs:
            continue
        root = slots.find(src)
        if slots.span[root][1] != i or lifetimes[dst][0] != i or slots.find(dst) != dst:
            continue
        others = {step.io[t] for j, t in enumerate(op.inputs) if j != k and t in step.io} - {src}
        if any(slots.find(b) == root for b in others | graph_outputs):
            continue  # another input shares the memory, or a result must survive to the end
        if sizes[dst] > slots.size[root]:
            continue
        if _runs_in_place(op, graph):
            slots.merge(root, dst)
    return slots


def plan(graph: Graph, schedule: Schedule, strategy: str = "best", target: str = "tinymcu",
         pointer_bytes: int = 4) -> Plan:
    """Plan ``schedule`` of ``graph`` into one arena.

    ``target="tinymcu"``: our runtime (in-place, our kernels' scratch, 4-byte alignment).
    ``target="tflm"``: TFLM's own plan (no in-place, its reference kernels' scratch,
    greedy-by-size, 16-byte alignment) plus its persistent allocations for a CPU with
    ``pointer_bytes``-byte pointers (4 on Cortex-M), sized to the smallest arena TFLM
    allocates in — see :mod:`.tflm_arena`; ``"tflm-cmsis-nn"`` the same with TFLM's
    CMSIS-NN kernels (their scratch buffers and OpData).
    """
    if target in ("tflm", "tflm-cmsis-nn"):
        from tinymcu.mcu_runtime.tflm_arena import tflm_plan

        return tflm_plan(graph, schedule, pointer_bytes=pointer_bytes,
                         kernels="cmsis-nn" if target == "tflm-cmsis-nn" else "reference")
    if target not in TARGETS:
        raise TinymcuError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if strategy not in STRATEGIES:
        raise TinymcuError(f"unknown planner strategy {strategy!r}; "
                           f"choose from {', '.join(STRATEGIES)}")
    align = ALIGNMENT[target]
    intervals, lifetimes, sizes, slots = _intervals(graph, schedule, align)
    return finish_plan(schedule, intervals, lifetimes, sizes,
                       {b: slots.find(b) for b in slots.root}, strategy, target, align)


def _intervals(graph: Graph, schedule: Schedule, align: int
               ) -> tuple[list[Interval], dict[str, tuple[int, int]], dict[str, int], _Slots]:
    """One interval per in-place slot and per step scratch: what placement has to pack."""
    lifetimes = buffer_lifetimes(graph, schedule)
    sizes = {b: align_up(schedule.buffers[b].nbytes, align) for b in lifetimes}
    slots = _inplace_slots(graph, schedule, lifetimes, sizes)
    intervals = [Interval(r, slots.size[r], *slots.span[r]) for r in slots.span]
    for i, step in enumerate(schedule.steps):
        n = align_up(ops.step_scratch(graph, step), align)
        if n:
            name = f"scratch@{i}"
            intervals.append(Interval(name, n, i, i))
            lifetimes[name], sizes[name] = (i, i), n
    return intervals, lifetimes, sizes, slots


def liveness_bound(graph: Graph, schedule: Schedule) -> int:
    """``plan(graph, schedule).lower_bound`` without placing anything.

    Cheap enough for the patch search to rank every candidate, and a true lower bound on
    any arena, so the search can stop planning once it exceeds the best arena found.
    """
    intervals, *_ = _intervals(graph, schedule, ALIGNMENT["tinymcu"])
    return lower_bound(intervals)


def finish_plan(schedule: Schedule, intervals: list[Interval],
                lifetimes: dict[str, tuple[int, int]], sizes: dict[str, int],
                slot_of: dict[str, str], strategy: str, target: str, align: int,
                persistent_bytes: int = 0, offsets: dict[str, int] | None = None) -> Plan:
    """Place ``intervals`` (one per slot or scratch buffer) and assemble the :class:`Plan`.

    ``offsets`` skips placement when the caller already has them (the ``tflm`` target
    places on TFLM's own time scale).
    """
    slot_offsets = offsets if offsets is not None else place(intervals, strategy)
    live = live_profile(intervals, len(schedule.steps))
    arena = arena_size(intervals, slot_offsets)
    offsets_of = {b: slot_offsets[slot_of.get(b, b)] for b in lifetimes}
    return Plan(schedule, offsets_of, sizes, lifetimes, arena + persistent_bytes,
                max(live, default=0) + persistent_bytes, live, strategy, target, align,
                {b: s for b, s in slot_of.items() if b != s}, persistent_bytes)
