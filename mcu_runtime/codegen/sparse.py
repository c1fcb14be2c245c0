"""Which flash format each filter of a ``--sparse`` model takes.

A pruned model's filters are stored as the bitmask plus non-zero values (one bit per
weight: the format ``check.sparse_weight_bytes`` and the pruner's flash budget count) or —
CONV_2D and FULLY_CONNECTED — as per-row non-zero lists (:func:`sparse_row_lists`: two
bytes per non-zero and a one- or two-byte count per row, which the sparse kernels walk
touching only the non-zero weights). Lists are the smaller format for very sparse rows and
the faster one (a bitmask row is decoded into a list first: once per call for a 1x1, once
per im2col block for a window conv, into a tap table per depthwise channel; rows of more
than 128 taps take the bitmask GEMM, which finds each non-zero among 24-bit chunks of the
mask); the bitmask is the smaller one for moderately pruned rows.

:func:`plan_formats` first takes the smaller format of every filter, so the model's weights
never take more flash than the bitmask format would (the budget the pruner planned with),
and then spends the bytes that saved on lists where they buy the most instructions per
byte, while the total stays within that budget. Dense layouts are not candidates: their
kernels (the paired GEMM, the SIMD depthwise) are several kB of code that a sparse model's
flash would pay on top, which on a small pruned model outweighs every weight byte saved.
A FULLY_CONNECTED whose weights have a non-zero zero point stays dense (a stored zero is
not a zero weight).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ir import Graph, Op

#: the largest tap gap one list entry spans (its delta is a uint8)
MAX_GAP = 255
#: the kinds whose filters the formats apply to; EXPAND_DEPTHWISE's two parts included
FILTERED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")

#: rough Cortex-M4 instructions per stored weight and output pixel: the bitmask walks (a
#: share of a 24-bit chunk per weight, plus each non-zero's multiply-accumulate) and the
#: lists' 3.5 per entry and column; they only rank the upgrades
COST_MASK_PER_WEIGHT = 0.4
COST_MASK_PER_NONZERO = 5.0
COST_LIST_PER_ENTRY = 3.5


def sparse_row_lists(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A pruned (O, K) int8 filter as the sparse GEMM walks it: per row, its non-zero
    weights in tap order as (delta, value) byte pairs, delta the distance in taps from the
    previous entry (from tap 0 for a row's first). A gap longer than :data:`MAX_GAP` takes
    extra entries of value 0 ``MAX_GAP`` taps on, which add nothing, so the kernel's inner
    loop has no escape test. Rows are concatenated; an all-zero row has no entries.
    Returns (the uint8 entry bytes, each row's entry count)."""
    out: list[int] = []
    counts = np.zeros(len(rows), np.int64)
    for o, row in enumerate(np.asarray(rows)):
        start = len(out)
        prev = 0
        for t in np.flatnonzero(row).tolist():
            gap = t - prev
            while gap > MAX_GAP:
                out += [MAX_GAP, 0]
                gap -= MAX_GAP
            out += [gap, int(row[t]) & 0xFF]
            prev = t
        counts[o] = (len(out) - start) // 2
    return np.asarray(out, np.uint8), counts


def count_type(counts: np.ndarray) -> tuple[str, int]:
    """(C type, bytes) of a filter's per-row entry counts: uint8 when every row has at
    most 255 entries, else uint16."""
    return ("uint8_t", 1) if not counts.size or counts.max() <= 0xFF else ("uint16_t", 2)


@dataclass(frozen=True)
class _Option:
    fmt: str
    nbytes: int
    cost: float


def filter_rows(op: Op, graph: Graph) -> np.ndarray:
    """The filter as the sparse kernels walk it, one row per output channel: CONV_2D's
    OHWI and FULLY_CONNECTED's (O, I) flattened per row, a depthwise filter channel-major
    ((C*M) rows of KH*KW taps)."""
    rows = np.asarray(graph.tensors[op.inputs[1]].data)
    if op.kind == "DEPTHWISE_CONV_2D":
        return rows.reshape(-1, graph.tensors[op.outputs[0]].shape[-1]).T
    return rows.reshape(rows.shape[0], -1)


def _options(op: Op, graph: Graph, fused: bool) -> list[_Option]:
    rows = filter_rows(op, graph)
    n, nnz = rows.size, int(np.count_nonzero(rows))
    if op.kind == "FULLY_CONNECTED":  # a stored zero is a zero weight only with zero point 0
        q = graph.tensors[op.inputs[1]].quant
        if q is not None and np.asarray(q.zero_point).any():
            return [_Option("dense", n, 0.0)]
    pixels = ops.get(op.kind).macs(op, graph) / max(n, 1)  # output pixels per weight
    options = [_Option("mask", (n + 7) // 8 + nnz,
                       (COST_MASK_PER_WEIGHT * n + COST_MASK_PER_NONZERO * nnz) * pixels)]
    if op.kind != "DEPTHWISE_CONV_2D" and not fused:  # lists need the sparse GEMM
        entries, counts = sparse_row_lists(rows)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0
        kbias = 0 if has_bias else 4 * len(rows)  # lists carry kbias instead of the bias
        if counts.size and counts.max() <= 0xFFFF:
            count_bytes = count_type(counts)[1] * counts.size
            options.append(_Option("lists", entries.size + count_bytes + kbias,
                                   COST_LIST_PER_ENTRY * entries.size / 2 * pixels))
    return options


def _filtered_ops(graph: Graph) -> list[tuple[Op, bool]]:
    found = []
    for op in graph.ops:
        parts = [(op.attrs["expand"], True), (op.attrs["depthwise"], True)] \
            if op.kind == "EXPAND_DEPTHWISE" else [(op, False)]
        for part, fused in parts:
            t = graph.tensors[part.inputs[1]] if part.kind in FILTERED else None
            if t is not None and t.dtype == "int8" and t.data is not None:
                found.append((part, fused))
    return found


def plan_formats(graph: Graph) -> dict[int, str]:
    """Filter tensor index → "mask", "lists" or (weights with a zero point) "dense" for
    every int8 filter of a sparse model (module docstring): the smaller format each, then
    upgrades to lists in order of estimated instructions saved per extra byte while the
    total stays within the bitmask format's."""
    options = {op.inputs[1]: _options(op, graph, fused) for op, fused in _filtered_ops(graph)}
    budget = sum(opts[0].nbytes for opts in options.values())
    chosen = {t: min(opts, key=lambda o: (o.nbytes, o.cost)) for t, opts in options.items()}
    used = sum(o.nbytes for o in chosen.values())
    while True:
        best: tuple[float, int, _Option] | None = None
        for t, opts in options.items():
            cur = chosen[t]
            for o in opts:
                extra = o.nbytes - cur.nbytes
                if o.cost >= cur.cost or used + extra > budget:
                    continue
                gain = (cur.cost - o.cost) / max(extra, 1)
                if best is None or gain > best[0]:
                    best = (gain, t, o)
        if best is None:
            break
        _, t, o = best
        used += o.nbytes - chosen[t].nbytes
        chosen[t] = o
    return {t: o.fmt for t, o in chosen.items()}
