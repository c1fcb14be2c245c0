"""TRANSPOSE_CONV int8 with per-channel requantization (TFLM's ``transpose_conv.cc`` and
``reference_integer_ops::TransposeConv``).

Inputs follow TFLite: 0 the output shape (a constant), 1 the OHWI filter, 2 the activation,
3 an optional int32 bias. TFLM scatters every input pixel times every filter tap into an
int32 scratch buffer the size of the output (requested in Prepare), then adds the bias and
requantizes per channel. Integer sums do not depend on their order, so our kernels gather
instead: each output pixel sums the taps that land on it, and the C runtime needs no
scratch at all — the TFLM arena model still counts TFLM's.

Padding is TFLM's: ``ComputePaddingHeightWidth`` run on the *output* size (the size the
forward convolution would read), top/left only; taps that land outside the output are
dropped. The fused activation (``TransposeConvOptions.fused_activation_function``) clamps
the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinymcu.mcu_runtime.flatbuf import Table
from tinymcu.mcu_runtime.geometry import Pad, out_size, same_pad_before
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops import decode as d
from tinymcu.mcu_runtime.ops import register
from tinymcu.mcu_runtime.ops.base import OpDef, PrepareStep, qparams, quant_of
from tinymcu.mcu_runtime.ops.conv import tflm_conv_prepare
from tinymcu.mcu_runtime.ops.transpose_conv import kernel
from tinymcu.mcu_runtime.quant import activation_range, quantize_multiplier

#: TFLM's OpData: ConvParams (padding type, 4 int16 pads, 4 int16 strides/dilations, 4 int32
#: offsets/multiplier, shift, 2 int32 clamps, 2 float clamps), scratch and bias-buffer
#: indices, the two per-channel array pointers; with compression support the weight and
#: bias decompression scratch indices
TFLM_TRANSPOSE_CONV_OPDATA = "i" "hhhh" "hhhh" "iiii" "i" "ii" "ii" "ii" "pp" "|ii"

#: TFLite tensor order of the op's inputs
OUTPUT_SHAPE, FILTER, INPUT, BIAS = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class TransposeConvParams:
    """Per-output-channel (multiplier, shift), zero points, clamp and geometry.

    ``pad`` is TFLM's (top, left): output position = input position · stride − pad + tap."""

    mult: np.ndarray
    shift: np.ndarray
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]


@register
class TransposeConv(OpDef):
    kinds = ("TRANSPOSE_CONV",)
    options_type = {"TRANSPOSE_CONV": 49}
    untileable = "scatters each input pixel over a stride-spaced output window"
    tflm_opdata = {"TRANSPOSE_CONV": TFLM_TRANSPOSE_CONV_OPDATA}
    tflm_options = {"TRANSPOSE_CONV": 16}
    header = "tm_transpose_conv.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        d.arity(ins, outs, 3, 4, required=3)
        shape_t, w, x, out = ins[OUTPUT_SHAPE], ins[FILTER], ins[INPUT], outs[0]
        for t, what in ((x, "input"), (w, "filter"), (out, "output")):
            d.rank(t, 4, what)
        d.const(w, "filter")
        want = tuple(int(v) for v in d.const(shape_t, "output_shape").ravel())
        d.need(out.shape == want, f"output shape {out.shape} should be {want} (output_shape)")
        d.need(x.shape[3] == w.shape[3], f"filter {w.shape} expects {w.shape[3]} input "
               f"channels, input has {x.shape[3]}")
        d.need(out.shape[0] == x.shape[0] and out.shape[3] == w.shape[0],
               f"output {out.shape} does not fit input {x.shape} and filter {w.shape}")
        padding = d.padding(opts, 0)
        stride = (d.positive(opts, 2, "stride_h"), d.positive(opts, 1, "stride_w"))
        for axis in (0, 1):  # the forward conv of the output must read back the input size
            fwd = out_size(out.shape[1 + axis], w.shape[1 + axis], stride[axis], 1, padding)
            d.need(fwd == x.shape[1 + axis],
                   f"a {padding} transpose conv of stride {stride} and filter {w.shape[1:3]} "
                   f"cannot turn input {x.shape} into output {out.shape}")
        d.bias(ins[BIAS] if len(ins) > BIAS else None, w.shape[0])
        return {"padding": padding, "stride": stride, "activation": d.activation(opts, 3)}

    def params(self, op: Op, graph: Graph) -> TransposeConvParams:
        w = graph.tensors[op.inputs[FILTER]]
        out = graph.tensors[op.outputs[0]]
        in_scale, in_zp = qparams(graph, op.inputs[INPUT])
        out_scale, out_zp = qparams(graph, op.outputs[0])
        f_scales = np.asarray(quant_of(graph, op.inputs[FILTER]).scale, np.float32).ravel()
        if f_scales.size == 1:
            f_scales = np.repeat(f_scales, out.shape[3])
        pairs = [quantize_multiplier(in_scale * float(s) / out_scale) for s in f_scales]
        lo, hi = activation_range(op.attrs.get("activation", "NONE"), out_scale, out_zp)
        k = (w.shape[1], w.shape[2])
        stride: tuple[int, int] = tuple(op.attrs["stride"])
        pad = tuple(same_pad_before(out.shape[1 + a], out_size(out.shape[1 + a], k[a],
                                                                stride[a], 1,
                                                                op.attrs["padding"]),
                                    k[a], stride[a], 1) for a in (0, 1))
        return TransposeConvParams(np.array([m for m, _ in pairs], np.int64),
                                   np.array([s for _, s in pairs], np.int64), in_zp, out_zp,
                                   lo, hi, k, stride, (pad[0], pad[1]))

    def macs(self, op: Op, graph: Graph) -> int:
        x = graph.tensors[op.inputs[INPUT]].shape
        w = graph.tensors[op.inputs[FILTER]].shape  # O, KH, KW, I
        return int(np.prod(x, dtype=np.int64)) * int(w[0] * w[1] * w[2])

    def tflm_prepare(self, op: Op, graph: Graph, pointer_bytes: int) -> list[PrepareStep]:
        return tflm_conv_prepare(op, graph, INPUT, FILTER, BIAS)

    def tflm_scratch(self, op: Op, graph: Graph) -> list[int]:
        """The int32 accumulator over the whole output that TFLM's Prepare requests."""
        return [4 * graph.tensors[op.outputs[0]].size]

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        out_shape = graph.tensors[op.outputs[0]].shape
        return [kernel.transpose_conv(self.params(op, graph), inputs[INPUT],
                                      np.asarray(inputs[FILTER]),
                                      inputs[BIAS] if len(inputs) > BIAS else None, out_shape)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        from tinymcu.mcu_runtime.ops.transpose_conv.emit import emit_transpose_conv
        return emit_transpose_conv(unit, op, step, i)
