"""Predict the tensor arena TFLite Micro needs for a model, without running TFLM.

TFLM's arena has two ends. The *head* (growing up from the start) holds the non-persistent
tensors, planned by its GreedyMemoryPlanner: every activation tensor, 16-byte aligned, alive
from the op that writes it to the last op that reads it (graph inputs from the start, graph
outputs to the end), no in-place and no aliasing (RESHAPE copies), plus the scratch buffers
kernels request during Prepare. The *tail* (growing down from the end) holds persistent
allocations: the allocator objects themselves, one ``TfLiteEvalTensor`` per tensor, one
``NodeAndRegistration`` per op, the builtin option structs, each kernel's ``OpData``
(conv/depthwise/per-channel FC add two int32 arrays of per-channel multipliers and shifts),
the scratch-buffer handles and full ``TfLiteTensor`` copies of the graph inputs/outputs.

Between the two, *temporary* allocations sit on top of the head while the model is being
allocated, and they decide the smallest arena that works on models with small activations
(the size TFLM reports, ``arena_used_bytes()``, is then not enough: MLPerf AD reports
2,260 B on a Cortex-M4 but needs 2,704 B). :func:`simulate` therefore replays
``MicroInterpreter::AllocateTensors`` allocation by allocation, with TFLM's alignment rules
(``SingleArenaBufferAllocator``: a persistent buffer is aligned *down* from the tail, a temp
buffer *up* from the last one), and fails exactly where TFLM fails:

1. ``MicroAllocator::Create``: the buffer allocator, the greedy planner and the allocator.
2. ``StartModelAllocation``: the builtin-data allocator; the scratch-request area in the head
   (``ScratchBufferRequest`` x 12); subgraph table, eval tensors, node/registrations.
3. every op's builtin options, then every kernel's ``Init`` (OpData, 16-byte aligned).
4. every kernel's ``Prepare``: a temporary ``TfLiteTensor`` (+ quantization and zero-point
   array when quantized) for each of its tensors, held together (the reference FC, conv and
   the CMSIS-NN kernels all do), per-channel arrays in the tail, scratch requests; then the
   temps are reset and the request area grows to (requests so far + 12).
5. ``FinishModelAllocation``: scratch handles; ``CommitStaticMemoryPlan``: temp subgraph
   offsets and one ``AllocationInfo`` per tensor and scratch buffer, then *all* remaining
   memory as the planner's work area, which needs 40 bytes per planned buffer; the planned
   head is then reserved.
6. the persistent ``TfLiteTensor`` pointer arrays and structs of the graph inputs/outputs.

The planned head is reproduced exactly (same lifetimes, same size-descending order with
TFLM's tie-breaking, same first-fit placement). Struct sizes come from TFLM's headers as
field lists (:func:`struct_size`) for an :class:`Abi`: the x86-64 Python wheel we can run
(8-byte pointers, compression support, recording allocator: its allocator objects carry the
recording counters) and a plain 32-bit Cortex-M build. The builtin option sizes in the op
folders were measured on the wheel with one-op models (``tflm_options``); they are
pointer-free structs, so the same on 32 bits.

Kernels: ``"reference"`` (TFLM's portable kernels) or ``"cmsis-nn"`` (TFLM's
``kernels/cmsis_nn`` on a Cortex-M with the DSP extension, M4/M7/M33, GCC): these keep an
``int buffer_idx`` beside the reference OpData of conv, depthwise, FC and pooling, and
request the scratch buffers CMSIS-NN's ``arm_*_get_buffer_size`` functions ask for (the op
folders' ``tflm_cmsis_nn_scratch``), planned in the head like any other buffer.

Checked by ``tests/test_tflm_arena.py`` and ``benchmarks/memory``: against the wheel's
``print_allocations()`` and smallest working arena (bisected), and against the Cortex-M4
figures measured on a real 32-bit TFLM build (``benchmarks/memory/tflm_cortex_m4.json``).
Limits: it sees the graph the reader produced, so shape plumbing the reader folds to
constants (SHAPE/STRIDED_SLICE/PACK from Keras ``Flatten`` with a dynamic batch) is missing
although TFLM runs it; our exporter emits no such ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.planner import (
    Interval,
    Plan,
    align_up,
    arena_size,
    finish_plan,
    greedy_by_size,
)
from tinymcu.mcu_runtime.schedule import Schedule, buffer_name, layer_schedule

#: TFLM's ``MicroArenaBufferAlignment()``: planned buffers and OpData are 16-byte aligned
TFLM_ALIGN = 16

#: the kernel sets ``--target tflm`` (reference) and ``--target tflm-cmsis-nn`` predict
KERNELS = ("reference", "cmsis-nn")

#: ``kMaxScratchBuffersPerOp``: the head always has room for this many more requests
_MAX_SCRATCH_PER_OP = 12

#: GreedyMemoryPlanner's work area per planned buffer (requirements, two sort arrays,
#: list entry, offset): five int32-only records, so the same on every ABI
_PLANNER_PER_BUFFER = 40


@dataclass(frozen=True)
class Abi:
    """What changes TFLM's struct sizes: pointer width, compression fields, recording."""

    pointer_bytes: int
    compression: bool
    recording: bool
    name: str


X86_64_WHEEL = Abi(8, True, True, "x86-64 tflite-micro wheel (recording allocator)")
CORTEX_M = Abi(4, False, False, "32-bit Cortex-M")


def abi_for(pointer_bytes: int) -> Abi:
    if pointer_bytes == 8:
        return X86_64_WHEEL
    if pointer_bytes == 4:
        return CORTEX_M
    raise TinymcuError(f"pointer size must be 4 (Cortex-M) or 8 (x86-64), not {pointer_bytes}")


def struct_size(fields: str, abi: Abi) -> int:
    """sizeof a C struct from one letter per field, with natural alignment.

    ``i`` int32/float/enum, ``p`` pointer/size_t, ``b``/``c`` bool/int8, ``h`` int16,
    ``d`` double. A ``|`` starts the fields that exist only in builds with compression
    support; a second ``|`` the ones only the recording allocator has.
    """
    plain, _, rest = fields.partition("|")
    comp, _, rec = rest.partition("|")
    letters = plain + (comp if abi.compression else "") + (rec if abi.recording else "")
    size_align = {"i": (4, 4), "b": (1, 1), "c": (1, 1), "h": (2, 2), "d": (8, 8),
                  "p": (abi.pointer_bytes, abi.pointer_bytes)}
    offset, widest = 0, 1
    for ch in letters:
        size, align = size_align[ch]
        offset = align_up(offset, align) + size
        widest = max(widest, align)
    return align_up(offset, widest)


def struct_align(fields: str, abi: Abi) -> int:
    """alignof the same struct: its widest field."""
    widths = {"i": 4, "b": 1, "c": 1, "h": 2, "d": 8, "p": abi.pointer_bytes}
    return max((widths[ch] for ch in fields if ch != "|"), default=1)


# Per-op TFLM facts (OpData layouts, builtin option struct sizes — measured on the wheel,
# pointer-free — per-channel arrays, scratch requests) live in each op folder's OpDef
# (``ops/<family>/__init__.py``: ``tflm_opdata``, ``tflm_options``, ``tflm_per_channel``,
# ``tflm_scratch``, ``tflm_cmsis_nn_scratch``); these tables are built from the registry.
_OPDATA: dict[str, str] = {k: v for d in ops.all_defs() for k, v in d.tflm_opdata.items()}
_OPTIONS: dict[str, int] = {k: v for d in ops.all_defs() for k, v in d.tflm_options.items()}
_WHEEL_EXTRA: dict[str, int] = {k: v for d in ops.all_defs()
                                for k, v in d.tflm_wheel_extra.items()}

#: CMSIS-NN kernels whose OpData wraps the reference one: the fields after it (conv,
#: depthwise, pooling: ``int buffer_idx``; FC: per-channel arrays for its 1x1-conv path,
#: ``buffer_idx``, ``kernel_sums``, batches, accumulation and output depth)
_CMSIS_WRAPPED = {"CONV_2D": "i", "DEPTHWISE_CONV_2D": "i", "FULLY_CONNECTED": "ppipiii",
                  "AVERAGE_POOL_2D": "i", "MAX_POOL_2D": "i"}

# Struct layouts (``struct_size`` codes) of what TFLM allocates for itself.
#: SingleArenaBufferAllocator: two vtables, five arena pointers, temp checksum, temp count;
#: the recording variant adds requested head/tail bytes, used bytes, allocation count
_BUFFER_ALLOCATOR = "pp" "ppppp" "p" "i" "||pppp"
#: GreedyMemoryPlanner: vtable, counts, four work-array pointers, list heads, offsets, flag
_GREEDY_PLANNER = "p" "ii" "pppp" "ii" "p" "b"
#: MicroAllocator: vtable, two buffer allocators, builtin-data allocator, planner, flag,
#: scratch request count and head, max head usage; the recording variant adds its buffer
#: allocator pointer and eight RecordedAllocation {requested, used, count} counters
_MICRO_ALLOCATOR = "p" "pppp" "b" "ppp" "||p" + "ppp" * 8
#: MicroBuiltinDataAllocator: vtable and the persistent allocator
_BUILTIN_DATA_ALLOCATOR = "pp"
#: SubgraphAllocations: node/registrations, eval tensors (+ compression data)
_SUBGRAPH_ALLOCATIONS = "pp" "|p"
#: TfLiteEvalTensor: data, dims, type
_EVAL_TENSOR = "ppi"
#: NodeAndRegistration: TfLiteNode (inputs, outputs, intermediates, user_data,
#: builtin_data, custom data, its size) and the registration pointer
_NODE_AND_REGISTRATION = "pppppp" "i" "p"
#: TfLiteTensor as TFLM compiles it (TF_LITE_STATIC_MEMORY): type, data, dims, params
#: (scale, zero point), allocation type, bytes, is_variable, quantization (type, params)
_TFLITE_TENSOR = "ippiiipbip"
#: TfLiteAffineQuantization: scale, zero point arrays, quantized dimension
_AFFINE_QUANT = "ppi"
#: ScratchBufferRequest: bytes, node index, subgraph index
_SCRATCH_REQUEST = "pii"
#: AllocationInfo: bytes, output pointer, first created, last used, offline offset, flag
_ALLOCATION_INFO = "ppiiib"


@dataclass
class TflmArena:
    """A predicted TFLM arena: ``head`` (planned tensors) + ``tail`` (persistent) = ``total``.

    ``total`` is what TFLM reports after allocation (``arena_used_bytes()``);
    ``min_arena`` is the smallest arena (a multiple of 16 B) with which allocation succeeds,
    larger than ``total`` when a temporary allocation (Prepare, planning) peaks above it.
    ``peak`` names the allocation step that sets ``min_arena``.
    """

    head: int
    tail: int
    min_arena: int
    abi: str
    kernels: str = "reference"
    peak: str = ""
    tail_parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.head + self.tail


def _channels(graph: Graph, t: int) -> int:
    q = graph.tensors[t].quant
    return int(q.scale.size) if q is not None else 0


def _check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise TinymcuError(f"unknown TFLM kernels {kernels!r}; choose from "
                           f"{', '.join(KERNELS)}")


def _opdata_bytes(op: Op, abi: Abi, kernels: str) -> int:
    """sizeof the kernel's OpData (0: it allocates none)."""
    if op.kind not in _OPDATA:
        raise TinymcuError(f"op {op.index} ({op.kind}): no TFLM arena model for this op")
    layout = _OPDATA[op.kind]
    size = struct_size(layout, abi) if layout else 0
    if kernels == "cmsis-nn" and op.kind in _CMSIS_WRAPPED:
        # struct OpData { <reference OpData> reference_op_data; <extra fields>; }
        extra = _CMSIS_WRAPPED[op.kind]
        size = struct_size("c" * size + extra, abi)
        size = align_up(size, max(struct_align(layout, abi), struct_align(extra, abi)))
    return size


def _scratch_requests(op: Op, graph: Graph, kernels: str) -> list[int]:
    """Bytes of each scratch buffer the kernel requests during Prepare."""
    d = ops.get(op.kind)
    sizes = d.tflm_cmsis_nn_scratch(op, graph) if kernels == "cmsis-nn" \
        else d.tflm_scratch(op, graph)
    return [n for n in sizes if n > 0]


def tflm_intervals(graph: Graph, kernels: str = "reference") -> list[Interval]:
    """TFLM's buffers in the order it adds them: tensors by index, then scratch requests.

    Times follow TFLM's allocation scopes: 0 is the subgraph start, op ``i`` is ``i + 1``.
    """
    _check_kernels(kernels)
    n = len(graph.ops)
    first: dict[int, int] = {t: 0 for t in (*graph.inputs, *graph.outputs)}
    last: dict[int, int] = dict(first)
    scratch: list[Interval] = []
    for i, op in enumerate(graph.ops):
        for t in op.outputs:
            first[t] = last[t] = i + 1
        for t in op.inputs:
            if t >= 0 and not graph.tensors[t].is_const:
                last[t] = i + 1
        for k, nbytes in enumerate(_scratch_requests(op, graph, kernels)):
            scratch.append(Interval(f"scratch@{i}" + (f".{k}" if k else ""),
                                    align_up(nbytes, TFLM_ALIGN), i + 1, i + 1))
    for t in graph.outputs:
        last[t] = n
    tensors = [Interval(buffer_name(t), align_up(graph.tensors[t].nbytes, TFLM_ALIGN),
                        first[t], last[t])
               for t in sorted(first)
               if not graph.tensors[t].is_const and not graph.tensors[t].is_variable]
    return tensors + scratch


def variable_bytes(graph: Graph) -> list[int]:
    """Each state tensor's persistent allocation: TFLM's ``AllocateVariables`` gives every
    variable tensor its own 16-byte aligned buffer in the tail, outside the memory plan."""
    return [align_up(graph.tensors[t].nbytes, TFLM_ALIGN) for t in graph.variables()
            if not graph.tensors[t].kernel_state]  # those are in their op's persistent data


def file_tensor_count(graph: Graph) -> int:
    """Tensors of the model file (TFLM's count): without the variables the reader added
    for state a custom kernel keeps in its own buffer (``Tensor.kernel_state``)."""
    return sum(1 for t in graph.tensors if not t.kernel_state)


class _OutOfArena(Exception):
    """An allocation that TFLM would refuse in an arena of the simulated size."""


class _Arena:
    """TFLM's SingleArenaBufferAllocator on addresses 0..size (the start 16-byte aligned)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.head = 0
        self.temp = 0
        self.tail = size
        self.parts: dict[str, int] = {}

    def persistent(self, what: str, nbytes: int, align: int) -> None:
        # TFLM itself checks only against the head, so a tail buffer taken while Prepare
        # holds temporaries may overwrite them; whether it then still runs depends on the
        # bytes overwritten. We never predict into that region: the temporaries count.
        new = (self.tail - nbytes) // align * align
        if new < max(self.head, self.temp):
            raise _OutOfArena(what)
        self.parts[what] = self.parts.get(what, 0) + self.tail - new
        self.tail = new

    def temporary(self, what: str, nbytes: int, align: int) -> None:
        start = align_up(self.temp, align)
        if self.tail - start < nbytes:
            raise _OutOfArena(what)
        self.temp = start + nbytes

    def resize_head(self, what: str, nbytes: int) -> None:
        if self.tail < nbytes:
            raise _OutOfArena(what)
        self.head = self.temp = nbytes

    def reset_temp(self) -> None:
        self.temp = self.head

    def available(self) -> int:
        return self.tail // TFLM_ALIGN * TFLM_ALIGN - align_up(self.temp, TFLM_ALIGN)


def _allocate(graph: Graph, abi: Abi, kernels: str, head: int, n_planned: int,
              arena: _Arena) -> None:
    """Replay ``MicroInterpreter::AllocateTensors`` in ``arena``; raise where TFLM fails."""
    p = abi.pointer_bytes

    def persist(what: str, layout: str, count: int = 1) -> None:
        arena.persistent(what, count * struct_size(layout, abi), struct_align(layout, abi))

    def tensor(t: int, temp: bool) -> None:
        alloc = arena.temporary if temp else arena.persistent
        kind = "Prepare temporaries" if temp else "Persistent TfLiteTensor data"
        alloc(kind, struct_size(_TFLITE_TENSOR, abi), struct_align(_TFLITE_TENSOR, abi))
        if graph.tensors[t].quant is not None:
            kind = "Prepare temporaries" if temp else "Persistent TfLiteTensor quantization data"
            alloc(kind, struct_size(_AFFINE_QUANT, abi), struct_align(_AFFINE_QUANT, abi))
            alloc(kind, 4 + 4 * _channels(graph, t), 4)

    request = struct_size(_SCRATCH_REQUEST, abi)
    persist("allocator objects", _BUFFER_ALLOCATOR)
    persist("allocator objects", _GREEDY_PLANNER)
    persist("allocator objects", _MICRO_ALLOCATOR)
    persist("allocator objects", _BUILTIN_DATA_ALLOCATOR)
    arena.resize_head("scratch requests", request * _MAX_SCRATCH_PER_OP)
    persist("allocator objects", _SUBGRAPH_ALLOCATIONS)
    persist("TfLiteEvalTensor data", _EVAL_TENSOR, file_tensor_count(graph))
    persist("NodeAndRegistration struct", _NODE_AND_REGISTRATION, len(graph.ops))
    for op in graph.ops:
        # The wheel's extra bytes are pointer-aligned: after a 12-byte SVDF options struct a
        # FULLY_CONNECTED one starts 4 bytes lower (measured on tflm_keyword_scrambled).
        extra = _WHEEL_EXTRA.get(op.kind, 0) if abi.recording else 0
        nbytes = _OPTIONS.get(op.kind, 0) + extra
        if nbytes:
            arena.persistent("builtin options", nbytes, p if extra else 4)
    for op in graph.ops:
        nbytes = _opdata_bytes(op, abi, kernels)
        if nbytes:
            arena.persistent("Persistent buffer data", nbytes, TFLM_ALIGN)
    requests = 0
    for op in graph.ops:
        for what, value in ops.get(op.kind).tflm_prepare(op, graph, p):
            if what == "temp":
                tensor(value, temp=True)
            else:
                arena.persistent("Persistent buffer data", value, TFLM_ALIGN)
        requests += len(_scratch_requests(op, graph, kernels))
        arena.reset_temp()
        arena.resize_head("scratch requests", request * (requests + _MAX_SCRATCH_PER_OP))
    if requests:
        arena.persistent("scratch buffer handles", p * requests, p)
    # FinishModelAllocation: AllocateVariables after the handles, before the plan
    for nbytes in variable_bytes(graph):
        arena.persistent("TfLiteTensor variable buffer data", nbytes, TFLM_ALIGN)
    arena.temporary("memory planning", p, p)  # subgraph offsets
    arena.temporary("memory planning", struct_size(_ALLOCATION_INFO, abi)
                    * (file_tensor_count(graph) + requests), struct_align(_ALLOCATION_INFO, abi))
    if arena.available() // _PLANNER_PER_BUFFER < n_planned:
        raise _OutOfArena("memory planning")
    arena.reset_temp()
    arena.resize_head("planned tensors", head)
    for ts in (graph.inputs, graph.outputs):
        arena.persistent("Persistent buffer data", p * len(ts), TFLM_ALIGN)
        for t in ts:
            tensor(t, temp=False)


def simulate(graph: Graph, arena_bytes: int, pointer_bytes: int = 4,
             kernels: str = "reference") -> str | None:
    """Allocate ``graph`` as TFLM would in an arena of ``arena_bytes``: None if it fits,
    else the allocation step that fails."""
    _check_kernels(kernels)
    abi = abi_for(pointer_bytes)
    intervals = tflm_intervals(graph, kernels)
    head = arena_size(intervals, greedy_by_size(intervals))
    try:
        _allocate(graph, abi, kernels, head, len(intervals), _Arena(arena_bytes))
    except _OutOfArena as e:
        return str(e)
    return None


def predict(graph: Graph, pointer_bytes: int = 4, kernels: str = "reference") -> TflmArena:
    """The arena TFLM needs for ``graph`` on a CPU with ``pointer_bytes``-byte pointers,
    with its reference or its CMSIS-NN kernels."""
    _check_kernels(kernels)
    abi = abi_for(pointer_bytes)
    intervals = tflm_intervals(graph, kernels)
    head = arena_size(intervals, greedy_by_size(intervals))
    n = len(intervals)
    # What TFLM reports: allocate in a roomy arena (16-byte aligned end) and read the tail.
    roomy = _Arena(align_up(2 * head + 256 * (len(graph.tensors) + len(graph.ops))
                            + sum(8 * graph.tensors[op.outputs[0]].shape[-1]
                                  for op in graph.ops)
                            + sum(variable_bytes(graph))
                            + sum(sum(ops.get(op.kind).tflm_persistent(op, graph, pointer_bytes))
                                  for op in graph.ops) + (1 << 16), TFLM_ALIGN))
    _allocate(graph, abi, kernels, head, n, roomy)
    tail = roomy.size - roomy.tail
    # The smallest arena: first size (16-byte steps) from the reported total on at which
    # every allocation succeeds; bisection over a bracket, as the failures are monotone.
    lo = align_up(head + tail, TFLM_ALIGN) - TFLM_ALIGN
    hi = lo + TFLM_ALIGN
    while True:
        try:
            _allocate(graph, abi, kernels, head, n, _Arena(hi))
            break
        except _OutOfArena:
            lo, hi = hi, hi + 2 * (hi - lo)
    peak = ""
    while hi - lo > TFLM_ALIGN:
        mid = (lo + hi) // 2 // TFLM_ALIGN * TFLM_ALIGN
        try:
            _allocate(graph, abi, kernels, head, n, _Arena(mid))
            hi = mid
        except _OutOfArena as e:
            lo, peak = mid, str(e)
    if not peak:
        try:
            _allocate(graph, abi, kernels, head, n, _Arena(lo))
        except _OutOfArena as e:
            peak = str(e)
    return TflmArena(head, tail, hi, abi.name, kernels, peak, dict(roomy.parts))


def tflm_plan(graph: Graph, schedule: Schedule | None = None, pointer_bytes: int = 4,
              kernels: str = "reference") -> Plan:
    """The plan TFLM itself makes, as a :class:`Plan` (step ``i`` = TFLM scope ``i + 1``).

    ``arena_bytes`` is the smallest arena TFLM allocates in (head plus persistent tail plus
    what temporary allocations need beyond them), because that is what must fit in SRAM;
    the buffers occupy the first ``planned_bytes``.
    """
    schedule = schedule or layer_schedule(graph)
    if schedule.kind != "layer" or [s.op for s in schedule.steps] != list(range(len(graph.ops))):
        raise TinymcuError("TFLM runs op by op in graph order: target tflm takes only the "
                           "layer schedule")
    arena = predict(graph, pointer_bytes, kernels)
    scoped = tflm_intervals(graph, kernels)
    offsets = greedy_by_size(scoped)  # on TFLM's own scopes, so offsets match TFLM's
    n = len(graph.ops)
    intervals = [Interval(it.name, it.size, max(it.first - 1, 0), min(it.last - 1, n - 1))
                 for it in scoped]
    lifetimes = {it.name: (it.first, it.last) for it in intervals}
    sizes = {it.name: it.size for it in intervals}
    result = finish_plan(schedule, intervals, lifetimes, sizes, {}, "greedy_by_size", "tflm",
                         TFLM_ALIGN, persistent_bytes=arena.min_arena - arena.head,
                         offsets=offsets)
    # state tensors live in the persistent tail, one after the other past the head
    at = arena_size(intervals, offsets)
    for t, nbytes in zip(graph.variables(), variable_bytes(graph), strict=True):
        name = buffer_name(t)
        result.offsets[name], result.sizes[name], result.lifetimes[name] = at, nbytes, (0, n - 1)
        at += nbytes
    return result
