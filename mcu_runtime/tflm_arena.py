"""Predict the tensor arena TFLite Micro needs for a model, without running TFLM.

TFLM's arena has two parts. The *head* holds the non-persistent tensors, planned by its
GreedyMemoryPlanner: every activation tensor, 16-byte aligned, alive from the op that
writes it to the last op that reads it (graph inputs from the start, graph outputs to the
end), no in-place and no aliasing (RESHAPE copies), plus the scratch buffers kernels request
during Prepare. The *tail* holds persistent allocations: one ``TfLiteEvalTensor`` per tensor,
one ``NodeAndRegistration`` per op, each kernel's ``OpData`` (conv/depthwise/FC add two
int32 arrays of per-channel multipliers and shifts), the builtin option structs, full
``TfLiteTensor`` copies of the graph inputs/outputs with their quantization, and the
allocator objects themselves.

The head is reproduced exactly (same lifetimes, same size-descending order with TFLM's
tie-breaking, same first-fit placement). The tail is computed from the C struct layouts
for an :class:`Abi`: the x86-64 Python wheel we can measure (8-byte pointers, TFLM built
with compression support, recording allocator) and a plain Cortex-M build (4-byte pointers).
Struct layouts follow TFLM's headers; sizes not derivable from a layout (the allocator
objects, the option structs) were measured on the wheel with one-op models and are
assumed pointer-free unless noted. ``benchmarks/memory`` and ``tests/test_tflm_arena.py``
check the 64-bit prediction against ``print_allocations()`` and the smallest working arena.

Limits: the prediction is for TFLM's reference kernels (a CMSIS-NN build requests extra
scratch buffers for convolutions); and it sees the graph the reader produced, so shape
plumbing the reader folds to constants (SHAPE/STRIDED_SLICE/PACK from Keras ``Flatten``
with a dynamic batch) is missing although TFLM runs it; our exporter emits no such ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import TinymcuError
from .ir import Graph, Op
from .planner import Interval, Plan, align_up, arena_size, finish_plan, greedy_by_size
from .schedule import Schedule, buffer_name, layer_schedule

#: TFLM's ``MicroArenaBufferAlignment()``: planned buffers and OpData are 16-byte aligned
TFLM_ALIGN = 16


@dataclass(frozen=True)
class Abi:
    """What changes TFLM's struct sizes: pointer width, compression fields, recording.

    ``allocator_bytes`` is the tail TFLM spends on its own objects (allocator, planner,
    builtin-data allocator, subgraph table): 488 B measured on the recording x86-64 wheel;
    for a plain 32-bit build it is estimated from the objects' field counts (44 words):
    not measured, since no 32-bit TFLM runs here.
    """

    pointer_bytes: int
    compression: bool
    allocator_bytes: int
    name: str


X86_64_WHEEL = Abi(8, True, 488, "x86-64 tflite-micro wheel (recording allocator)")
CORTEX_M = Abi(4, False, 176, "32-bit Cortex-M, reference kernels")


def abi_for(pointer_bytes: int) -> Abi:
    if pointer_bytes == 8:
        return X86_64_WHEEL
    if pointer_bytes == 4:
        return CORTEX_M
    raise TinymcuError(f"pointer size must be 4 (Cortex-M) or 8 (x86-64), not {pointer_bytes}")


def struct_size(fields: str, abi: Abi) -> int:
    """sizeof a C struct from one letter per field, with natural alignment.

    ``i`` int32/float/enum, ``p`` pointer, ``b``/``c`` bool/int8, ``h`` int16, ``d`` double.
    A ``|`` starts the fields that exist only in builds with compression support.
    """
    plain, _, comp = fields.partition("|")
    letters = plain + (comp if abi.compression else "")
    size_align = {"i": (4, 4), "b": (1, 1), "c": (1, 1), "h": (2, 2), "d": (8, 8),
                  "p": (abi.pointer_bytes, abi.pointer_bytes)}
    offset, widest = 0, 1
    for ch in letters:
        size, align = size_align[ch]
        offset = align_up(offset, align) + size
        widest = max(widest, align)
    return align_up(offset, widest)


# OpData each reference kernel allocates in Init (TFLM kernels/*.h); "" = none.
_CONV = "iiii" "iiiii" "pp" "iii" "|ii"    # OpDataConv (also depthwise)
_OPDATA: dict[str, str] = {
    "CONV_2D": _CONV,
    "DEPTHWISE_CONV_2D": _CONV,
    "FULLY_CONNECTED": "iiiiiiii" "i" "pp" "b" "|ii",  # OpDataFullyConnected
    "SOFTMAX": "d" "iiiiiii" "ppppp",                  # SoftmaxParams
    "AVERAGE_POOL_2D": "iiii" "iiii",                  # OpDataPooling
    "MAX_POOL_2D": "iiii" "iiii",
    "ADD": "b" + "i" * 14,                             # OpDataAdd
    "SUB": "b" + "i" * 12,                             # OpDataSub
    "MUL": "i" * 9,                                    # OpDataMul
    "MEAN": "i" * 11,                                  # OpDataReduce
    "LOGISTIC": "iiii",
    "HARD_SWISH": "i" * 5,
    "RELU": "i" * 7,
    "RELU6": "i" * 7,
    "PAD": "i" * 14,
    "PADV2": "i" * 14,
    "CONCATENATION": "cppiii" "|" + "i" * 10,         # ConcatenationParams + scratch ids
    "QUANTIZE": "id" "iii",
    "DEQUANTIZE": "di" "iii",
    "RESHAPE": "", "SQUEEZE": "", "TRANSPOSE": "",
}

# Builtin option structs TFLM parses into the tail (measured on the wheel; pointer-free).
_OPTIONS = {"CONV_2D": 28, "DEPTHWISE_CONV_2D": 28, "FULLY_CONNECTED": 32,
            "AVERAGE_POOL_2D": 40, "MAX_POOL_2D": 40, "RESHAPE": 36, "SQUEEZE": 36,
            "SOFTMAX": 4, "ADD": 8, "SUB": 8, "MUL": 4, "CONCATENATION": 8, "MEAN": 25}

_PER_CHANNEL_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D")

#: head bytes a convolution's Prepare holds beyond its temporary tensors (measured)
_CONV_PREPARE_EXTRA = 280

#: TfLiteTensor as TFLM compiles it (TF_LITE_STATIC_MEMORY): type, data, dims, params
#: (scale, zero point), allocation type, is_variable, bytes, quantization (type, params)
_TFLITE_TENSOR = "ippiiibpip"


@dataclass
class TflmArena:
    """A predicted TFLM arena: ``head`` (planned tensors) + ``tail`` (persistent) = ``total``.

    ``min_arena`` is the smallest arena TFLM should accept: Prepare and planning make
    temporary allocations in the head region that can exceed the planned head on models
    with tiny activations (the recorded total is then not enough).
    """

    head: int
    tail: int
    min_arena: int
    abi: str
    tail_parts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.head + self.tail


def _channels(graph: Graph, t: int) -> int:
    q = graph.tensors[t].quant
    return int(q.scale.size) if q is not None else 0


def _opdata_bytes(op: Op, graph: Graph, abi: Abi) -> tuple[int, int]:
    """(bytes, allocations) of the persistent buffers a kernel asks for, 16-byte aligned."""
    if op.kind not in _OPDATA:
        raise TinymcuError(f"op {op.index} ({op.kind}): no TFLM arena model for this op")
    layout = _OPDATA[op.kind]
    if not layout:
        return 0, 0
    total, count = align_up(struct_size(layout, abi), TFLM_ALIGN), 1
    per_channel = op.kind in _PER_CHANNEL_KINDS or (
        op.kind == "FULLY_CONNECTED" and _channels(graph, op.inputs[1]) > 1)
    if per_channel:
        out_channels = graph.tensors[op.outputs[0]].shape[-1]
        total += 2 * align_up(4 * out_channels, TFLM_ALIGN)
        count += 2
    return total, count


def _scratch_requests(op: Op, graph: Graph) -> list[int]:
    """Bytes of each scratch buffer the reference kernel requests in the head."""
    if op.kind == "MEAN":  # int32 sums, then index and resolved-axis work arrays
        out, inp, axes = (graph.tensors[t] for t in (op.outputs[0], *op.inputs[:2]))
        return [4 * out.size, 4 * len(inp.shape), 4 * axes.size]
    return []


def tflm_intervals(graph: Graph) -> list[Interval]:
    """TFLM's buffers in the order it adds them: tensors by index, then scratch requests.

    Times follow TFLM's allocation scopes: 0 is the subgraph start, op ``i`` is ``i + 1``.
    """
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
        for k, nbytes in enumerate(_scratch_requests(op, graph)):
            scratch.append(Interval(f"scratch@{i}" + (f".{k}" if k else ""),
                                    align_up(nbytes, TFLM_ALIGN), i + 1, i + 1))
    for t in graph.outputs:
        last[t] = n
    tensors = [Interval(buffer_name(t), align_up(graph.tensors[t].nbytes, TFLM_ALIGN),
                        first[t], last[t])
               for t in sorted(first) if not graph.tensors[t].is_const]
    return tensors + scratch


def _tail(graph: Graph, abi: Abi) -> dict[str, int]:
    p = abi.pointer_bytes
    eval_tensor = struct_size("ppi", abi)
    node_and_registration = struct_size("pppppp" "i" "p", abi)
    tflite_tensor = struct_size(_TFLITE_TENSOR, abi)
    affine_quant = struct_size("ppi", abi)
    io = [*graph.inputs, *graph.outputs]
    io_quant = sum(affine_quant + align_up(4 + 4 * _channels(graph, t), 4)
                   for t in io if graph.tensors[t].quant is not None)
    opdata = [_opdata_bytes(op, graph, abi) for op in graph.ops]
    return {
        "TfLiteEvalTensor data": len(graph.tensors) * eval_tensor,
        "Persistent TfLiteTensor data": len(io) * tflite_tensor,
        "Persistent TfLiteTensor quantization data": io_quant,
        "Persistent buffer data": sum(b for b, _ in opdata)
        + sum(align_up(p * len(ts), TFLM_ALIGN) for ts in (graph.inputs, graph.outputs)),
        "NodeAndRegistration struct": len(graph.ops) * node_and_registration,
        "builtin options": sum(_OPTIONS.get(op.kind, 0) for op in graph.ops),
        "allocator objects": abi.allocator_bytes,
    }


def _temp_peak(graph: Graph, intervals: list[Interval], abi: Abi) -> int:
    """Largest temporary allocation in the head before the plan is committed.

    Planning holds one AllocationInfo per tensor and scratch request plus the greedy
    planner's 40 bytes per planned buffer (less 16 B of slack, measured). A convolution's
    Prepare holds temporary TfLiteTensors with their quantization for all its tensors
    plus ~280 B more (measured on one-op models; other kernels release theirs early).
    """
    n_scratch = sum(1 for it in intervals if it.name.startswith("scratch@"))
    allocation_info = struct_size("ppiiib", abi)
    planning = allocation_info * (len(graph.tensors) + n_scratch) + 40 * len(intervals) - 16
    tensor = struct_size(_TFLITE_TENSOR, abi) + struct_size("ppi", abi) + 4
    prepare = max((sum(tensor + 4 * _channels(graph, t) for t in op.inputs + op.outputs
                       if t >= 0) + _CONV_PREPARE_EXTRA
                   for op in graph.ops if op.kind in _PER_CHANNEL_KINDS), default=0)
    return max(planning, prepare)


def predict(graph: Graph, pointer_bytes: int = 4) -> TflmArena:
    """The arena TFLM needs for ``graph`` on a CPU with ``pointer_bytes``-byte pointers."""
    abi = abi_for(pointer_bytes)
    intervals = tflm_intervals(graph)
    head = arena_size(intervals, greedy_by_size(intervals))
    parts = _tail(graph, abi)
    tail = align_up(sum(parts.values()), TFLM_ALIGN)
    min_arena = tail + align_up(max(head, _temp_peak(graph, intervals, abi)), TFLM_ALIGN)
    return TflmArena(head, tail, min_arena, abi.name, parts)


def tflm_plan(graph: Graph, schedule: Schedule | None = None, pointer_bytes: int = 4) -> Plan:
    """The plan TFLM itself makes, as a :class:`Plan` (step ``i`` = TFLM scope ``i + 1``).

    ``arena_bytes`` is the whole predicted arena, head plus persistent tail, because that
    is what must fit in SRAM; the buffers occupy the first ``planned_bytes``.
    """
    schedule = schedule or layer_schedule(graph)
    if schedule.kind != "layer" or [s.op for s in schedule.steps] != list(range(len(graph.ops))):
        raise TinymcuError("TFLM runs op by op in graph order: target tflm takes only the "
                           "layer schedule")
    arena = predict(graph, pointer_bytes)
    scoped = tflm_intervals(graph)
    offsets = greedy_by_size(scoped)  # on TFLM's own scopes, so offsets match TFLM's
    n = len(graph.ops)
    intervals = [Interval(it.name, it.size, max(it.first - 1, 0), min(it.last - 1, n - 1))
                 for it in scoped]
    lifetimes = {it.name: (it.first, it.last) for it in intervals}
    sizes = {it.name: it.size for it in intervals}
    return finish_plan(schedule, intervals, lifetimes, sizes, {}, "greedy_by_size", "tflm",
                       TFLM_ALIGN, persistent_bytes=arena.tail, offsets=offsets)
