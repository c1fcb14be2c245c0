"""Unquantized int32 arithmetic (ADD, SUB, MUL, DIV, MINIMUM, MAXIMUM), shared by the
elementwise and binary op folders.

TFLM runs these ops on plain int32 tensors (no quantization: TensorFlow's integer tails such
as the audio front end's ``(log · 256 + 333) / 666 - 128`` clip to int8) with its reference
templates: the C operator on int32 — products and sums wrap, DIV truncates toward zero —
then the fused activation clamps to its integer range (``CalculateActivationRange`` for
int32: NONE is the full range, RELU [0, max], RELU6 [0, 6], RELU_N1_TO_1 [-1, 1]).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Tensor
from tinymcu.mcu_runtime.ops import decode as d

_I32 = (-(1 << 31), (1 << 31) - 1)
_RANGES = {"NONE": _I32, "RELU": (0, _I32[1]), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}


def is_plain(ins: list[Tensor | None], outs: list[Tensor]) -> bool:
    """True if every operand is an int32 tensor without quantization."""
    ts = [t for t in (*ins, *outs) if t is not None]
    return all(t.dtype == "int32" and t.quant is None for t in ts)


def check_not_int32(ins: list[Tensor | None], outs: list[Tensor]) -> None:
    """Refuse int32 operands outside the plain path (quantized or mixed with other types)."""
    ts = [t for t in (*ins, *outs) if t is not None]
    d.need(not any(t.dtype == "int32" for t in ts),
           "int32 operands must all be int32 without quantization (TFLM's plain integer "
           "arithmetic)")


@dataclass(frozen=True)
class PlainIntParams:
    kind: str
    act_min: int
    act_max: int


def params(kind: str, activation: str) -> PlainIntParams:
    lo, hi = _RANGES[activation]
    return PlainIntParams(kind, lo, hi)


def run(p: PlainIntParams, x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray:
    """The int32 result with C's wraps, then the activation clamp."""
    assert x is not None and y is not None
    a, b = np.broadcast_arrays(x.astype(np.int64), y.astype(np.int64))
    if p.kind == "ADD":
        r = a + b
    elif p.kind == "SUB":
        r = a - b
    elif p.kind == "MUL":
        r = a * b
    elif p.kind == "DIV":
        if np.any(b == 0):
            raise TinymcuError("int32 DIV by zero; TFLM's result is undefined there")
        q = np.abs(a) // np.abs(b)
        r = np.where((a < 0) != (b < 0), -q, q)  # C truncates toward zero
    elif p.kind == "MINIMUM":
        r = np.minimum(a, b)
    else:
        r = np.maximum(a, b)
    wrapped = r.astype(np.uint64).astype(np.uint32).view(np.int32)  # int32 wrap
    return np.clip(wrapped, p.act_min, p.act_max).astype(np.int32)
