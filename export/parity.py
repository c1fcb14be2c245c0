"""How much did int8 change the model? Outputs and weights, float vs int8, side by side.

Outputs: the int8 model runs with TFLite's reference kernels (BUILTIN_REF — the kernels TFLM
matches bit for bit; the optimized ones do not) on the evaluation data; its dequantized outputs
are compared with the float ONNX model's. Weights: per weighted layer, the density (non-zero
fraction) of the float weights and of the int8 weights read back from the .tflite, and whether
every exactly-zero float weight is still exactly zero — pruning is only worth something on the
MCU if quantization keeps the zeros.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.export.onnx_to_tf import LayerWeights, input_to_tf_layout
from tinymcu.mcu_runtime.ir import Graph, Quant

WEIGHTED_KINDS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


@dataclass
class OutputParity:
    samples: int
    top1_agreement: float | None   # None when the output is not a class score vector
    max_abs_error: float
    mean_abs_error: float
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    float_max_abs: float | None = None  # max |float output|: scales the errors above

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LayerDensity:
    name: str
    onnx_node: str
    kind: str
    weights: int
    float_density: float
    int8_density: float
    float_zeros: int
    int8_zeros: int
    zeros_preserved: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_input(x_nchw: np.ndarray, quant: Quant) -> list[np.ndarray]:
    """NCHW float samples → one int8 NHWC batch-1 array per sample (the model's input quant)."""
    scale, zp = float(quant.scale.reshape(-1)[0]), int(quant.zero_point.reshape(-1)[0])
    return [np.clip(np.round(input_to_tf_layout(s[None]) / scale) + zp, -128,
                    127).astype(np.int8)
            for s in x_nchw]


def dequantize(q: np.ndarray, quant: Quant) -> np.ndarray:
    scale, zp = float(quant.scale.reshape(-1)[0]), int(quant.zero_point.reshape(-1)[0])
    return (q.astype(np.float32) - zp) * scale


def output_parity(float_out: np.ndarray, int8_out: np.ndarray, out_quant: Quant,
                  labels: np.ndarray | None = None) -> OutputParity:
    """Compare float outputs (N, ...) with int8 outputs (N, ...) of the same samples."""
    deq = dequantize(int8_out, out_quant).reshape(float_out.shape)
    err = np.abs(deq - float_out)
    top1 = f_acc = q_acc = None
    if float_out.ndim == 2 and float_out.shape[1] > 1:
        f_cls, q_cls = float_out.argmax(1), deq.argmax(1)
        top1 = float(np.mean(f_cls == q_cls))
        if labels is not None:
            f_acc, q_acc = float(np.mean(f_cls == labels)), float(np.mean(q_cls == labels))
    return OutputParity(len(float_out), top1, float(err.max()), float(err.mean()), f_acc, q_acc,
                        float(np.abs(float_out).max()))


def layer_densities(layers: list[LayerWeights], graph: Graph) -> list[LayerDensity]:
    """Match each float layer to its int8 weight tensor by name and compare zeros.

    The builder names every weighted op; the converter reuses that name for the weight
    tensor (possibly inside a ``;``-joined fused name), so the match is exact, not positional.
    """
    by_name: dict[str, np.ndarray] = {}
    for op in graph.ops:
        if op.kind in WEIGHTED_KINDS:
            t = graph.tensors[op.inputs[1]]
            if t.data is not None:
                for part in t.name.split(";"):
                    by_name[part] = t.data
    out = []
    for layer in layers:
        q = by_name.get(layer.name)
        if q is None or q.shape != layer.weight.shape:
            raise TinymcuError(f"int8 weights of layer {layer.name!r} not found in the .tflite "
                               "(the converter renamed or reshaped them)")
        f_zero, q_zero = layer.weight == 0, q == 0
        n = layer.weight.size
        out.append(LayerDensity(
            layer.name, layer.onnx_node, layer.kind, n,
            float(1 - f_zero.mean()), float(1 - q_zero.mean()),
            int(f_zero.sum()), int(q_zero.sum()), bool(np.all(q_zero[f_zero]))))
    return out
