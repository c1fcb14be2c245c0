"""ARG_MAX and ARG_MIN over one axis of an int8 tensor, int32 or int64 indices out
(TFLM's ``arg_min_max.cc`` / ``reference_ops::ArgMinMax``): the first index of the
largest (smallest) value — a strict comparison, so ties keep the earliest index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef


@dataclass(frozen=True)
class ArgMinMaxParams:
    """The input as (outer, axis, inner) and which extreme is wanted."""

    outer: int
    axis_size: int
    inner: int
    is_max: bool


@register
class ArgMinMax(OpDef):
    kinds = ("ARG_MAX", "ARG_MIN")
    options_type = {"ARG_MAX": 40, "ARG_MIN": 57}
    mixed_types = True
    untileable = "reduces over an axis"
    tflm_opdata = {"ARG_MAX": "", "ARG_MIN": ""}
    tflm_options = {"ARG_MAX": 4, "ARG_MIN": 4}
    header = "tm_arg_min_max.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, out = ins[0], outs[0]
        d.need(x.dtype == "int8", f"input is {x.dtype}; tinymcu runs {kind} on int8")
        d.need(out.dtype in ("int32", "int64"), f"output is {out.dtype}, expected int32/int64")
        axes = [int(a) for a in d.const(ins[1], "axis").ravel()]
        d.need(len(axes) == 1, "axis must be a single value")
        rank = len(x.shape)
        d.need(rank >= 1 and -rank <= axes[0] < rank, f"axis {axes[0]} out of range")
        axis = axes[0] % rank
        want = x.shape[:axis] + x.shape[axis + 1:]
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"axis": axis}

    def params(self, op: Op, graph: Graph) -> ArgMinMaxParams:
        shape = graph.tensors[op.inputs[0]].shape
        axis = op.attrs["axis"]
        return ArgMinMaxParams(int(np.prod(shape[:axis], dtype=np.int64)), shape[axis],
                               int(np.prod(shape[axis + 1:], dtype=np.int64)),
                               op.kind == "ARG_MAX")

    def macs(self, op: Op, graph: Graph) -> int:
        return graph.tensors[op.inputs[0]].size

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        p = self.params(op, graph)
        v = np.asarray(x).reshape(p.outer, p.axis_size, p.inner)
        idx = v.argmax(axis=1) if p.is_max else v.argmin(axis=1)  # first occurrence
        out = graph.tensors[op.outputs[0]]
        return [idx.astype(out.dtype).reshape(out.shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.arg_min_max.emit import emit_arg_min_max
        return emit_arg_min_max(unit, op, step, i)
