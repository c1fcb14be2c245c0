"""CONCATENATION: copies; int8 inputs whose scale/zero point differ from the output's are
requantized with TFLite's ``ConcatenationWithScaling`` float formula (the TFLite converter
normally unifies the scales, and TFLM refuses models where it did not). The C runtime runs
each requantized input through a 256-entry table made by this kernel.
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
from tinymcu.mcu_runtime.ops.base import OpDef, PrepareStep, qparams
from tinymcu.mcu_runtime.ops.concatenation import kernel


@dataclass(frozen=True)
class ConcatParams:
    """The axis, and per input the float32 (scale, bias) mapping it onto the output's
    quantization — None where it already has it (or the output is unquantized)."""

    axis: int
    rescale: tuple[tuple[np.float32, np.float32] | None, ...]
    out_zp: int


def concat_axis(op: Op, rank: int) -> int:
    a = int(op.attrs.get("axis", 0))
    return a + rank if a < 0 else a


@register
class Concatenation(OpDef):
    kinds = ("CONCATENATION",)
    options_type = {"CONCATENATION": 10}
    tiling = "pointwise"  # along channels only: ``patch`` checks the axis
    tflm_opdata = {"CONCATENATION": "cppiii" "|" + "i" * 10}  # ConcatenationParams + ids
    tflm_options = {"CONCATENATION": 8}
    #: int32 only unquantized (a plain copy, no rescale)
    activation_dtypes = ("int8", "int32")

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[PrepareStep]:
        """Prepare takes the first input and the output (type check), then every input
        again (rank check): a temporary each, none released before Prepare returns
        (measured on the wheel: a 3-input concat needs exactly these five)."""
        return [("temp", t) for t in (op.inputs[0], op.outputs[0], *op.inputs)]

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 1, 1 << 16, required=len(ins))
        out = outs[0]
        rank = len(out.shape)
        axis = int(opts.scalar(0, "int32")) if opts else 0
        d.need(-rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
        axis %= rank
        if any(t.dtype == "int32" for t in (*ins, out)):
            d.need(all(t.dtype == "int32" and t.quant is None for t in (*ins, out)),
                   "int32 inputs and output must all be int32 without quantization")
        for t in ins:
            d.need(len(t.shape) == rank and all(
                s == o for i, (s, o) in enumerate(zip(t.shape, out.shape, strict=True))
                if i != axis),
                f"input shape {t.shape} does not concatenate into {out.shape} on axis {axis}")
        d.need(sum(t.shape[axis] for t in ins) == out.shape[axis],
               f"inputs do not add up to output size {out.shape[axis]} on axis {axis}")
        return {"axis": axis, "activation": d.activation(opts, 1)}

    def params(self, op: Op, graph: Graph) -> ConcatParams:
        axis = concat_axis(op, len(graph.tensors[op.inputs[0]].shape))
        if graph.tensors[op.outputs[0]].quant is None:
            return ConcatParams(axis, tuple(None for _ in op.inputs), 0)
        s_out, zp_out = qparams(graph, op.outputs[0])
        inv_out = np.float32(1.0) / np.float32(s_out)
        rescale: list[tuple[np.float32, np.float32] | None] = []
        for t in op.inputs:
            s, zp = qparams(graph, t)
            if s == s_out and zp == zp_out:
                rescale.append(None)
                continue
            scale = np.float32(np.float32(s) * inv_out)
            rescale.append((scale, np.float32(np.float32(-zp) * scale)))
        return ConcatParams(axis, tuple(rescale), zp_out)

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.concatenation(self.params(op, graph), inputs)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.concatenation.emit import emit_concat
        return emit_concat(unit, op, step, i)
