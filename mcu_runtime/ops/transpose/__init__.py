"""TRANSPOSE: a permuted copy (TFLM's ``reference_ops::Transpose``; up to 6 dimensions in our
C runtime). Not in place: output element order differs from the input's."""

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
class TransposeParams:
    """``perm``; and for a walk over the output in order, its dims and the input stride (in
    elements) each output axis moves by."""

    perm: tuple[int, ...]
    out_dims: tuple[int, ...]
    in_strides: tuple[int, ...]


@register
class Transpose(OpDef):
    kinds = ("TRANSPOSE",)
    untileable = "permutes the axes"
    tflm_opdata = {"TRANSPOSE": ""}
    header = "tm_transpose.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, out = ins[0], outs[0]
        perm = tuple(int(p) for p in d.const(ins[1], "perm").ravel())
        d.need(sorted(perm) == list(range(len(x.shape))), f"perm {perm} is not a permutation")
        want = tuple(x.shape[p] for p in perm)
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"perm": perm}

    def params(self, op: Op, graph: Graph) -> TransposeParams:
        shape = graph.tensors[op.inputs[0]].shape
        perm_t = graph.tensors[op.inputs[1]] if len(op.inputs) > 1 else None
        data = op.attrs["perm"] if "perm" in op.attrs else perm_t.data if perm_t else None
        perm = tuple(int(p) for p in np.asarray(data).ravel())
        strides = [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
        return TransposeParams(perm, tuple(shape[p] for p in perm),
                               tuple(strides[p] for p in perm))

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        return [np.transpose(x, self.params(op, graph).perm)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.transpose.emit import emit_transpose
        return emit_transpose(unit, op, step, i)
