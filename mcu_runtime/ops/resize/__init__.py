"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR on int8 NHWC maps, as TFLM computes them.

* Bilinear (TFLM ``reference_ops::ResizeBilinearInteger``, no floating point): the scale
  is a Q10 integer ``round(1024·in/out)`` (``(in-1)/(out-1)`` with ``align_corners``);
  output row ``y`` sits at ``y·scale`` (``+ scale/2 - 512`` with ``half_pixel_centers``)
  in Q10; the two neighbouring rows are that position divided by 1024 with C's truncating
  division (clamped to the image), and the four neighbours' codes are weighted by Q10
  fractions, summed in int64 and rounded half away from zero by 2^20.
* Nearest (``reference_ops::ResizeNearestNeighbor``): the source row is
  ``floor((y + offset)·scale)`` in float32 (``round`` with ``align_corners``), clamped.

Both depend on the output coordinate only through per-row and per-column tables, so
``params()`` computes those tables once (the float32 steps of the nearest rule happen
here, at code-generation time) and the C kernel is integer-only table look-ups. The codes
are never requantized: like TFLM we copy/interpolate the stored values (the converter
gives input and output one quantization).

Not tileable: output rows map to input rows through a scale, not a stride window, so a
patch stage ends before a resize.
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
from tinymcu.mcu_runtime.ops.resize import kernel
from tinymcu.mcu_runtime.quant import round_half_away


@dataclass(frozen=True)
class ResizeParams:
    """Per output row (``y0``, ``y1``, ``wy``) and column (``x0``, ``x1``, ``wx``): the
    source rows/columns and, for bilinear, the Q10 position minus ``1024·y0`` (the weight
    of row ``y1``). Nearest uses only ``y0``/``x0``."""

    bilinear: bool
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    y0: tuple[int, ...]
    y1: tuple[int, ...]
    wy: tuple[int, ...]
    x0: tuple[int, ...]
    x1: tuple[int, ...]
    wx: tuple[int, ...]


def _cdiv(a: int, b: int) -> int:
    """C's integer division (truncates toward zero)."""
    q = abs(a) // b
    return q if a >= 0 else -q


def bilinear_axis(size_in: int, size_out: int, align: bool, half: bool
                  ) -> tuple[list[int], list[int], list[int]]:
    """``ComputeInterpolationValuesInteger`` for every output index of one axis."""
    if align and size_out > 1:
        scale = ((1 << 10) * (size_in - 1) + (size_out - 1) // 2) // (size_out - 1)
    else:
        scale = ((1 << 10) * size_in + size_out // 2) // size_out
    lo, hi, frac = [], [], []
    for v in range(size_out):
        pos = v * scale + scale // 2 - (1 << 9) if half else v * scale
        a = max(_cdiv(pos, 1 << 10), 0)
        lo.append(a)
        hi.append(min(_cdiv(pos + (1 << 10) - 1, 1 << 10), size_in - 1))
        frac.append(pos - (1 << 10) * a)
    return lo, hi, frac


def nearest_axis(size_in: int, size_out: int, align: bool, half: bool) -> list[int]:
    """``GetNearestNeighbor`` (float32 arithmetic) for every output index of one axis."""
    f32 = np.float32
    scale = (f32(size_in - 1) / f32(size_out - 1) if align and size_out > 1
             else f32(size_in) / f32(size_out))
    offset = f32(0.5) if half else f32(0.0)
    out = []
    for v in range(size_out):
        x = (f32(v) + offset) * scale
        src = int(round_half_away(np.asarray(x))) if align else int(np.floor(x))
        src = min(src, size_in - 1)
        out.append(max(src, 0) if half else src)
    return out


@register
class Resize(OpDef):
    kinds = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
    options_type = {"RESIZE_BILINEAR": 15, "RESIZE_NEAREST_NEIGHBOR": 74}
    untileable = "maps output rows to input rows by a scale, not a stride window"
    tflm_opdata = {"RESIZE_BILINEAR": "", "RESIZE_NEAREST_NEIGHBOR": ""}
    tflm_options = {"RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2}
    header = "tm_resize.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 2, 2, required=2)
        x, out = ins[0], outs[0]
        d.rank(x, 4, "input")
        size = d.const(ins[1], "size").ravel()
        d.need(size.size == 2 and int(size.min()) >= 1, f"size {size.tolist()} should be two "
               f"positive values")
        first = 2 if kind == "RESIZE_BILINEAR" else 0  # after new_height, new_width
        align = bool(opts.scalar(first, "bool", False)) if opts else False
        half = bool(opts.scalar(first + 1, "bool", False)) if opts else False
        d.need(not (align and half), "align_corners and half_pixel_centers are both set")
        want = (x.shape[0], int(size[0]), int(size[1]), x.shape[3])
        d.need(out.shape == want, f"output shape {out.shape} should be {want}")
        return {"align_corners": align, "half_pixel_centers": half}

    def params(self, op: Op, graph: Graph) -> ResizeParams:
        _, h, w, _ = graph.tensors[op.inputs[0]].shape
        _, oh, ow, _ = graph.tensors[op.outputs[0]].shape
        align = bool(op.attrs.get("align_corners", False))
        half = bool(op.attrs.get("half_pixel_centers", False))
        if op.kind == "RESIZE_BILINEAR":
            (y0, y1, wy), (x0, x1, wx) = (bilinear_axis(h, oh, align, half),
                                          bilinear_axis(w, ow, align, half))
            return ResizeParams(True, (h, w), (oh, ow), tuple(y0), tuple(y1), tuple(wy),
                                tuple(x0), tuple(x1), tuple(wx))
        ys, xs = nearest_axis(h, oh, align, half), nearest_axis(w, ow, align, half)
        return ResizeParams(False, (h, w), (oh, ow), tuple(ys), tuple(ys), (0,) * oh,
                            tuple(xs), tuple(xs), (0,) * ow)

    def macs(self, op: Op, graph: Graph) -> int:
        n = graph.tensors[op.outputs[0]].size
        return 4 * n if op.kind == "RESIZE_BILINEAR" else 0

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.resize(self.params(op, graph), inputs[0])]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.resize.emit import emit_resize
        return emit_resize(unit, op, step, i)
