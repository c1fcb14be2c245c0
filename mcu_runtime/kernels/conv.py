"""CONV_2D int8 with per-channel requantization (TFLite ``reference_integer_ops::ConvPerChannel``).

Direct convolution: our C runtime reads the input and writes the output with no scratch
buffer, so ``scratch_bytes`` is 0 and the op is never in place (every output pixel reads a
window of input pixels that other outputs still need).
"""

from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region
from . import padding
from .quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier, wrap32

kinds = ("CONV_2D",)


def channel_multipliers(op: Op, graph: Graph, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) as ``PopulateConvolutionQuantizationParams``.

    ``input_scale * filter_scale[c] / output_scale`` in double from float32 scales; a
    per-tensor filter scale is broadcast over the channels.
    """
    inp, flt, out = (graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]],
                     graph.tensors[op.outputs[0]])
    in_scale = float(np.float32(inp.quant.scale.ravel()[0]))
    out_scale = float(np.float32(out.quant.scale.ravel()[0]))
    f_scales = np.asarray(flt.quant.scale, dtype=np.float32).ravel()
    if f_scales.size == 1:
        f_scales = np.repeat(f_scales, channels)
    pairs = [quantize_multiplier(in_scale * float(s) / out_scale) for s in f_scales]
    return (np.array([m for m, _ in pairs], dtype=np.int64),
            np.array([s for _, s in pairs], dtype=np.int64))


def requantize_output(acc: np.ndarray, op: Op, graph: Graph, mult: np.ndarray,
                      shift: np.ndarray) -> np.ndarray:
    """int32 accumulator (channels last) → int8: rescale, add output zero point, clamp."""
    out = graph.tensors[op.outputs[0]]
    zp = int(out.quant.zero_point.ravel()[0])
    lo, hi = activation_range(op.attrs.get("activation", "NONE"),
                              float(out.quant.scale.ravel()[0]), zp)
    y = multiply_by_quantized_multiplier(wrap32(acc), mult, shift) + zp
    return np.clip(y, lo, hi).astype(np.int8)


def spatial_pad(op: Op, x: np.ndarray, kernel_hw: tuple[int, int],
                pad: padding.Pad | None) -> padding.Pad:
    return pad if pad is not None else padding.same_valid_pad(op, x.shape[1:3], kernel_hw)


def macs(op: Op, graph: Graph) -> int:
    out = graph.tensors[op.outputs[0]].shape
    flt = graph.tensors[op.inputs[1]].shape  # O, KH, KW, I
    return int(np.prod(out, dtype=np.int64)) * int(flt[1] * flt[2] * flt[3])


def scratch_bytes(op: Op, graph: Graph, region: Region | None = None) -> int:
    return 0


def inplace(op: Op, graph: Graph) -> bool:
    return False


def centred_input(op: Op, graph: Graph, x: np.ndarray, kernel_hw: tuple[int, int],
                  pad: padding.Pad | None, dtype: type
                  ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The padded input minus its zero point, plus stride, dilation and output size.

    Padding with the input zero point makes padded taps contribute 0, as skipping them does
    in TFLite's reference kernels; conv and depthwise share this set-up.
    """
    stride = tuple(op.attrs.get("stride", (1, 1)))
    dilation = tuple(op.attrs.get("dilation", (1, 1)))
    p = spatial_pad(op, x, kernel_hw, pad)
    in_zp = int(graph.tensors[op.inputs[0]].quant.zero_point.ravel()[0])
    out_hw = padding.output_hw(x.shape[1:3], kernel_hw, stride, dilation, p)
    xp = padding.pad_nhwc(x, p, in_zp).astype(dtype) - in_zp
    return xp, stride, dilation, out_hw


def add_bias_and_requantize(acc: np.ndarray, bias: np.ndarray | None, op: Op,
                            graph: Graph) -> np.ndarray:
    """int32 bias, per-channel fixed-point rescale, output zero point, activation clamp."""
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    mult, shift = channel_multipliers(op, graph, acc.shape[-1])
    return requantize_output(acc, op, graph, mult, shift)


def run(op: Op, graph: Graph, inputs: list[np.ndarray | None],
        pad: padding.Pad | None = None) -> list[np.ndarray]:
    x, w = inputs[0], np.asarray(inputs[1])
    oc, kh, kw, ic = w.shape
    xp, stride, dilation, out_hw = centred_input(op, graph, x, (kh, kw), pad, np.float64)
    wf = w.astype(np.float64)
    acc = np.zeros((x.shape[0], *out_hw, oc), dtype=np.float64)
    # float64 sums of int8 products are exact far beyond any int32 accumulator value
    for ky, kx, view in padding.windows(xp, (kh, kw), stride, dilation, out_hw):
        acc += view @ wf[:, ky, kx, :].T
    return [add_bias_and_requantize(acc.astype(np.int64), inputs[2] if len(inputs) > 2 else None,
                                    op, graph)]
