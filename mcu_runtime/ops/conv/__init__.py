"""CONV_2D int8 with per-channel requantization (TFLite ``reference_integer_ops::ConvPerChannel``).

Our C runtime runs a dense conv as a GEMM (``tm_conv2d_gemm``): two output pixels' windows
are gathered into a scratch buffer (im2col, 2 · KH · KW · C bytes, planned here by
``scratch_bytes``) and multiplied by two filter rows at a time; a 1×1 conv reads its
columns straight from the input and needs no scratch. The input zero point is folded into a
per-channel bias once, here in Python (``ConvParams.kernel_bias``), so the C inner loop is a
pure int8 dot product; the numpy reference keeps TFLite's ``(x - zp) · w`` form, and the two
agree exactly (int32 sums modulo 2^32). ``optimize="memory"`` (``set_optimize``) plans no
im2col buffer and the C runtime falls back to its direct loop. The op is never in place
(every output pixel reads a window of input pixels that other outputs still need).
:func:`conv_params` is shared with the depthwise and the fused expand + depthwise folders,
which requantize the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad, Window, op_window, same_valid_pad
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, PrepareStep, qparams, quant_of
from tinymcu.mcu_runtime.ops.conv import kernel
from tinymcu.mcu_runtime.quant import activation_range, quantize_multiplier, wrap32
from tinymcu.mcu_runtime.schedule import Region

#: the output range of TFLite's 16x8 kernels (int16 activations, int8 weights)
INT16_LIMITS = (-32768, 32767)

#: OpDataConv (also depthwise): see ``tflm_arena.struct_size``
TFLM_CONV_OPDATA = "iiii" "iiiii" "pp" "iii" "|ii"
#: ``--optimize``: "speed" plans the faster kernels' scratch, "memory" runs without it
OPTIMIZE = ("speed", "memory")


@dataclass(frozen=True, eq=False)
class ConvParams:
    """What a conv-like kernel needs: per-output-channel (multiplier, shift), zero points,
    the fused-activation clamp and the window geometry."""

    mult: np.ndarray
    shift: np.ndarray
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    depth_multiplier: int
    #: CONV_2D only: bias - in_zp · Σ filter row, as int32 (wrapped), per output channel: the
    #: C GEMM's accumulator start, so its loop sums raw int8 products (None for other kinds)
    kernel_bias: np.ndarray | None = None


def channel_multipliers(op: Op, graph: Graph, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) as ``PopulateConvolutionQuantizationParams``.

    ``input_scale * filter_scale[c] / output_scale`` in double from float32 scales; a
    per-tensor filter scale is broadcast over the channels.
    """
    in_scale, _ = qparams(graph, op.inputs[0])
    out_scale, _ = qparams(graph, op.outputs[0])
    f_scales = np.asarray(quant_of(graph, op.inputs[1]).scale, dtype=np.float32).ravel()
    if f_scales.size == 1:
        f_scales = np.repeat(f_scales, channels)
    pairs = [quantize_multiplier(in_scale * float(s) / out_scale) for s in f_scales]
    return (np.array([m for m, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.int64))


def act_clamp(op: Op, graph: Graph) -> tuple[int, int]:
    """The fused activation's [min, max] in output codes."""
    scale, zp = qparams(graph, op.outputs[0])
    limits = INT16_LIMITS if graph.tensors[op.outputs[0]].dtype == "int16" else (-128, 127)
    return activation_range(op.attrs.get("activation", "NONE"), scale, zp, limits)


def conv_params(op: Op, graph: Graph) -> ConvParams:
    """ConvParams of a CONV_2D or DEPTHWISE_CONV_2D op."""
    flt = graph.tensors[op.inputs[1]]
    channels = graph.tensors[op.outputs[0]].shape[-1]
    mult, shift = channel_multipliers(op, graph, channels)
    in_c = graph.tensors[op.inputs[0]].shape[-1]
    lo, hi = act_clamp(op, graph)
    in_zp = qparams(graph, op.inputs[0])[1]
    kbias = None
    if op.kind == "CONV_2D" and flt.data is not None:
        kbias = folded_bias(np.asarray(flt.data).reshape(channels, -1), in_zp,
                            graph.tensors[op.inputs[2]].data if len(op.inputs) > 2
                            and op.inputs[2] >= 0 else None)
    return ConvParams(
        mult, shift, in_zp, qparams(graph, op.outputs[0])[1], lo, hi,
        (flt.shape[1], flt.shape[2]), tuple(op.attrs.get("stride", (1, 1))),
        tuple(op.attrs.get("dilation", (1, 1))),
        channels // in_c if op.kind == "DEPTHWISE_CONV_2D" else 1, kbias)


def folded_bias(rows: np.ndarray, in_zp: int, bias: np.ndarray | None) -> np.ndarray:
    """``bias[o] - in_zp · Σ rows[o]`` wrapped to int32: Σ (x - zp) · w + bias equals
    Σ x · w + this, modulo 2^32, which is how the C kernels' int32 sums (and TFLM's) wrap."""
    sums = rows.astype(np.int64).sum(axis=1)
    b = np.zeros(rows.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    return np.asarray(wrap32(b - in_zp * sums), dtype=np.int64)


def set_optimize(graph: Graph, mode: str) -> Graph:
    """Record ``--optimize speed|memory`` on the ops whose C kernel has a faster variant
    that needs scratch (``attrs["optimize"]``): the planner, the emulator's junk-filling and
    the emitter all read it from the op, so they cannot disagree."""
    if mode not in OPTIMIZE:
        raise TinymcuError(f"unknown --optimize {mode!r}; choose from {', '.join(OPTIMIZE)}")
    for op in graph.ops:
        if op.kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            op.attrs["optimize"] = mode
    return graph


def set_sparse(graph: Graph) -> Graph:
    """Record that the model's filters are stored sparse (``--sparse``,
    ``attrs["sparse"]``) on its CONV_2D ops, before planning: a sparse window conv plans
    a block of im2col columns (:func:`sparse_block_columns`) instead of the dense GEMM's
    two. Like ``optimize`` the planner, emulator and emitter read it from the op."""
    for op in graph.ops:
        if op.kind == "CONV_2D":
            op.attrs["sparse"] = True
    return graph


#: the im2col block of a sparse window conv: at most this many bytes of columns
SPARSE_BLOCK_BYTES = 1024


def sparse_block_columns(op: Op, graph: Graph) -> int:
    """Im2col columns a sparse window conv gathers at a time (``tm_conv2d_sparse_blocks``):
    as many of its KH·KW·C-byte windows as fit :data:`SPARSE_BLOCK_BYTES` but at least 4
    (its rows run over 4 columns per pass), a multiple of 4, and at most the output's
    pixels. Each filter row's constants and entries are then taken once per block instead
    of once per pixel pair."""
    flt = graph.tensors[op.inputs[1]].shape
    out = graph.tensors[op.outputs[0]].shape
    cols = min(max(4, SPARSE_BLOCK_BYTES // int(flt[1] * flt[2] * flt[3])), int(out[1] * out[2]))
    return cols // 4 * 4 if cols >= 4 else cols


def speed(op: Op) -> bool:
    """True unless the op was planned with ``--optimize memory``."""
    return op.attrs.get("optimize", "speed") == "speed"


def pointwise(op: Op, graph: Graph) -> bool:
    """A 1×1 CONV_2D that never pads: every output pixel's column is one input pixel."""
    flt = graph.tensors[op.inputs[1]].shape
    pads = op.attrs.get("pads", (0, 0, 0, 0)) if op.attrs.get("padding") == "EXPLICIT" else ()
    return (flt[1], flt[2]) == (1, 1) and not any(pads)


def runs_as_gemm(op: Op, graph: Graph) -> bool:
    """True when the C runtime runs this CONV_2D as a GEMM (1×1 without padding, or an
    im2col buffer planned); else its direct loop (``--optimize memory``)."""
    return pointwise(op, graph) or speed(op)


def conv_window(op: Op, graph: Graph) -> Window:
    """The window of a conv or depthwise op (kernel from its filter's H and W)."""
    src = graph.tensors[op.inputs[0]].shape
    dst = graph.tensors[op.outputs[0]].shape
    fshape = graph.tensors[op.inputs[1]].shape
    return op_window(op, (src[1], src[2]), (dst[1], dst[2]), (fshape[1], fshape[2]))


def tflm_conv_prepare(op: Op, graph: Graph, x: int = 0, w: int = 1,
                      bias: int = 2) -> list[PrepareStep]:
    """TFLM's conv, depthwise and transpose-conv Prepare: it holds output, input and
    filter, takes the two per-channel arrays (out channels x int32) from the tail, then
    ``CalculateOpData*`` takes input, filter, bias and output *again* while the first three
    are still held. ``x``, ``w``, ``bias``: the operands' input positions."""
    out = op.outputs[0]
    xt, wt = op.inputs[x], op.inputs[w]
    bt = [op.inputs[bias]] if len(op.inputs) > bias and op.inputs[bias] >= 0 else []
    per_channel = 4 * graph.tensors[out].shape[-1]
    return [("temp", out), ("temp", xt), ("temp", wt),
            ("persist", per_channel), ("persist", per_channel),
            *[("temp", t) for t in (xt, wt, *bt, out)]]


@register
class Conv2D(OpDef):
    kinds = ("CONV_2D",)
    options_type = {"CONV_2D": 1}
    tiling = "window"
    tflm_opdata = {"CONV_2D": TFLM_CONV_OPDATA}
    tflm_options = {"CONV_2D": 28}
    header = "tm_conv.h"
    #: int8, or TFLite's 16x8 scheme: int16 activations (zero point 0), int8 filter,
    #: int64 bias, an int64 accumulator and the 16-bit-reduced multiplier
    activation_dtypes = ("int8", "int16")

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        x, w, out, attrs = d.filtered_window(ins, outs, opts, 5)
        d.need(x.shape[3] == w.shape[3], f"filter {w.shape} expects {w.shape[3]} input "
               f"channels, input has {x.shape[3]}")
        d.window(x, out, (w.shape[1], w.shape[2]), attrs["stride"], attrs["dilation"],
                 attrs["padding"],
                 w.shape[0])
        d.bias(ins[2] if len(ins) > 2 else None, w.shape[0])
        if x.dtype == "int16" or out.dtype == "int16":
            bias = ins[2] if len(ins) > 2 else None
            d.need(x.dtype == out.dtype == "int16" and w.dtype == "int8",
                   f"a 16x8 conv needs int16 input and output and int8 filter, not "
                   f"{x.dtype}/{out.dtype}/{w.dtype}")
            d.need(bias is None or bias.dtype == "int64",
                   f"a 16x8 conv needs an int64 bias, not {bias.dtype if bias else ''}")
            d.need(all(t.quant is not None and not t.quant.zero_point.any() for t in (x, out)),
                   "16x8 activations must have zero point 0")
        return {**attrs, "activation": d.activation(opts, 3)}

    def params(self, op: Op, graph: Graph) -> ConvParams:
        return conv_params(op, graph)

    def macs(self, op: Op, graph: Graph) -> int:
        out = graph.tensors[op.outputs[0]].shape
        flt = graph.tensors[op.inputs[1]].shape  # O, KH, KW, I
        return int(np.prod(out, dtype=np.int64)) * int(flt[1] * flt[2] * flt[3])

    def window(self, op: Op, graph: Graph) -> Window:
        return conv_window(op, graph)

    def scratch_bytes(self, op: Op, graph: Graph, region: Region | None = None) -> int:
        """The im2col buffer of the C GEMM: two output pixels' windows (KH · KW · C bytes
        each), a block of them for a sparse build (:func:`sparse_block_columns`). A 1×1
        conv reads its columns from the input, and ``--optimize memory`` trades the buffer
        for the direct loop: no scratch."""
        flt = graph.tensors[op.inputs[1]].shape
        if pointwise(op, graph) or not speed(op):
            return 0
        cols = sparse_block_columns(op, graph) if op.attrs.get("sparse") else 2
        return cols * int(flt[1] * flt[2] * flt[3])

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[PrepareStep]:
        return tflm_conv_prepare(op, graph)

    def tflm_cmsis_nn_scratch(self, op: Op, graph: Graph) -> list[int]:
        """``arm_convolve_wrapper_s8_get_buffer_size`` (DSP build): an unpadded, undilated
        1x1 conv needs none (its fast path's buffer exists only under Arm Compiler 6); every
        other int8 conv an im2col of two columns, ``2 * align4(kh*kw*c_in) * sizeof(int16)``.
        """
        if graph.tensors[op.inputs[0]].dtype != "int8":
            return []
        x = graph.tensors[op.inputs[0]]
        kh, kw = graph.tensors[op.inputs[1]].shape[1:3]
        top, _, left, _ = same_valid_pad(op, (x.shape[1], x.shape[2]), (kh, kw))
        dilated = tuple(op.attrs.get("dilation", (1, 1))) != (1, 1)
        if (kh, kw) == (1, 1) and top == 0 and left == 0 and not dilated:
            return []
        cols = kh * kw * x.shape[-1]
        return [2 * 2 * (cols + (-cols) % 4)]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        return [kernel.conv2d(op, self.params(op, graph), inputs, pad)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.conv.emit import emit_conv
        return emit_conv(unit, op, step, i)
