"""PAD and PADV2 on int8: a constant border — the output zero point (real 0) for PAD, the
``constant_values`` scalar for PADV2 (TFLM's pad.cc).

On a patch tile the explicit ``pad`` says how much of that border falls inside the tile
(H and W only); for patch tiling the op is a window of one pixel shifted by its leading pad.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad as TilePad
from tinymcu.mcu_runtime.geometry import Window
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef
from tinymcu.mcu_runtime.ops.pad import kernel


@dataclass(frozen=True)
class PadParams:
    """(before, after) per axis (None: non-constant paddings) and the fill value."""

    widths: tuple[tuple[int, int], ...] | None
    value: int


def pad_widths(op: Op, graph: Graph) -> list[tuple[int, int]] | None:
    """(before, after) per axis of a PAD/PADV2 op, or None if its paddings are not constant."""
    paddings = graph.tensors[op.inputs[1]]
    if not paddings.is_const:
        return None
    rows = [(int(a), int(b)) for a, b in np.asarray(paddings.data).reshape(-1, 2)]
    rank = len(graph.tensors[op.inputs[0]].shape)
    return [(0, 0)] * (rank - len(rows)) + rows


def fill_value(op: Op, graph: Graph) -> int:
    """PADV2's constant, else the output zero point (0 for an unquantized output)."""
    if op.kind == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        return int(np.asarray(graph.tensors[op.inputs[2]].data).ravel()[0])
    q = graph.tensors[op.outputs[0]].quant
    return int(q.zero_point.ravel()[0]) if q is not None else 0


@register
class PadOp(OpDef):
    kinds = ("PAD", "PADV2")
    tiling = "pad"
    tflm_opdata = {"PAD": "i" * 14, "PADV2": "i" * 14}

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 3, required=len(ins))
        x, out = ins[0], outs[0]
        pads = d.const(ins[1], "paddings")
        d.need(pads.shape == (len(x.shape), 2), f"paddings shape {pads.shape} should be "
               f"({len(x.shape)}, 2)")
        paddings = tuple((int(a), int(b)) for a, b in pads)
        d.need(all(a >= 0 and b >= 0 for a, b in paddings), f"negative paddings {paddings}")
        want = tuple(s + a + b for s, (a, b) in zip(x.shape, paddings, strict=True))
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        if len(ins) > 2:  # PADV2: one constant of the input's type and quantization
            value = d.const(ins[2], "constant_values")
            d.need(value.size == 1, f"constant_values has {value.size} elements, expected 1")
            d.need(ins[2].dtype == x.dtype and ins[2].quant == out.quant,
                   "constant_values must have the output's type and quantization")
        return {"paddings": paddings}

    def params(self, op: Op, graph: Graph) -> PadParams:
        widths = pad_widths(op, graph)
        return PadParams(tuple(widths) if widths is not None else None, fill_value(op, graph))

    def macs(self, op: Op, graph: Graph) -> int:
        return 0

    def window(self, op: Op, graph: Graph) -> Window:
        """Output row ``o`` reads input row ``o - before``: kernel 1, stride 1."""
        widths = pad_widths(op, graph)
        if widths is None:
            raise TinymcuError(f"op {op.index} {op.kind} has non-constant paddings")
        src = graph.tensors[op.inputs[0]].shape
        return Window((1, 1), (1, 1), (1, 1), (widths[1][0], widths[2][0]), (src[1], src[2]))

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: TilePad | None = None) -> list[np.ndarray]:
        return [kernel.pad(self.params(op, graph), inputs, pad)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.pad.emit import emit_pad
        return emit_pad(unit, op, step, i)
