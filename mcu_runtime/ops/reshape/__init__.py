"""RESHAPE and SQUEEZE: the same bytes with a new shape. The planner aliases the output onto
the input's buffer, so the C runtime does nothing (or one ``memmove`` if the plan placed
them apart)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef


@register
class Reshape(OpDef):
    kinds = ("RESHAPE", "SQUEEZE")
    options_type = {"RESHAPE": 17, "SQUEEZE": 30}
    alias = True
    untileable = "changes the shape"
    tflm_opdata = {"RESHAPE": "", "SQUEEZE": ""}
    tflm_options = {"RESHAPE": 36, "SQUEEZE": 36}
    #: only bytes are relabelled, so any integer element type works
    activation_dtypes = ("int8", "int16", "int32", "uint32", "uint8")

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        if kind == "RESHAPE":
            d.arity(ins, outs, 1, 2)
            d.need(ins[0].dtype == outs[0].dtype,
                   f"input {ins[0].dtype} and output {outs[0].dtype} types differ")
            d.need(ins[0].size == outs[0].size,
                   f"cannot reshape {ins[0].shape} into {outs[0].shape}")
            return {"new_shape": outs[0].shape}
        d.arity(ins, outs, 1, 1)
        x, out = ins[0], outs[0]
        dims = opts.array(0, "int32") if opts else None
        if dims is None or dims.size == 0:
            axes = tuple(i for i, s in enumerate(x.shape) if s == 1)
        else:
            axes = d.axes(dims, len(x.shape), "squeeze_dims")
        d.need(all(x.shape[i] == 1 for i in axes), f"cannot squeeze dims {axes} of {x.shape}")
        want = tuple(s for i, s in enumerate(x.shape) if i not in axes)
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"squeeze_dims": axes}

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def inplace(self, op: Op, graph: Graph) -> bool:
        return True

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        return [x.reshape(graph.tensors[op.outputs[0]].shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        src = unit.buffer_offset(step, op.inputs[0])
        dst = unit.buffer_offset(step, op.outputs[0])
        if src == dst:
            return ["/* same bytes, new shape: nothing to do */"]
        n = unit.graph.tensors[op.outputs[0]].nbytes
        return [f"memmove(tm_arena + {dst}, tm_arena + {src}, {n});"]
