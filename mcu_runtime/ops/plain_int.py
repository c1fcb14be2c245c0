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
from typing import TYPE_CHECKING

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Tensor
from tinymcu.mcu_runtime.ops import decode as d

if TYPE_CHECKING:
    from tinymcu.mcu_runtime.codegen.emitters import CUnit
    from tinymcu.mcu_runtime.ir import Op
    from tinymcu.mcu_runtime.schedule import Step

_I32 = (-(1 << 31), (1 << 31) - 1)
#: ``tm_int32_binary``'s operation codes (tm_binary.h)
C_KINDS = {"ADD": "TM_I32_ADD", "SUB": "TM_I32_SUB", "MUL": "TM_I32_MUL", "DIV": "TM_I32_DIV",
           "MINIMUM": "TM_I32_MIN", "MAXIMUM": "TM_I32_MAX"}
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


def emit(unit: CUnit, op: Op, step: Step) -> list[str]:
    """One ``tm_int32_binary`` call; each operand is the output's size or one element (a
    constant lives in flash)."""
    g = unit.graph
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} {op.kind} on int32 cannot run on a tile")
    n = g.tensors[op.outputs[0]].size
    operands = []
    for k, t in enumerate(op.inputs[:2]):
        size = g.tensors[t].size
        if size not in (1, n):
            raise TinymcuError(f"op {op.index} {op.kind}: the C runtime broadcasts a plain "
                               f"int32 operand only from one element (input {k} has {size})")
        src = (f"(const uint8_t *){unit.tensor_array(t, f'op{op.index}_in{k}')}"
               if g.tensors[t].is_const else
               f"(const uint8_t *)(tm_arena + {unit.buffer_offset(step, t)})")
        operands.append(f"{src}, {size}")
    p = params(op.kind, op.attrs.get("activation", "NONE"))
    lo = "INT32_MIN" if p.act_min == _I32[0] else str(p.act_min)
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_int32_binary({C_KINDS[op.kind]}, {operands[0]}, {operands[1]}, "
            f"(uint8_t *)(tm_arena + {dst}), {n}, {lo}, {p.act_max});"]
