"""CAST between int8 and another integer or float type (TFLM's ``cast.cc``): a C
``static_cast`` of every element — no quantization is applied. int8 → uint8/int16/int32/
float32, uint8/int16/int32 → int8, int16 → int32 and int32 ↔ uint32 (the audio front
end's integer tail; narrowing wraps modulo 256, as the cast does on the
compilers TFLM is built with); casts from float are refused (truncation of out-of-range
values is undefined in C).
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

#: (input dtype, output dtype) pairs, with the C function that runs each
PAIRS = {("int8", "uint8"): "tm_cast_i8_u8", ("int8", "int16"): "tm_cast_i8_i16",
         ("int8", "int32"): "tm_cast_i8_i32", ("int8", "float32"): "tm_cast_i8_f32",
         ("uint8", "int8"): "tm_cast_u8_i8", ("int16", "int8"): "tm_cast_i16_i8",
         ("int32", "int8"): "tm_cast_i32_i8", ("int16", "int32"): "tm_cast_i16_i32",
         ("uint32", "int32"): "tm_cast_u32_i32", ("int32", "uint32"): "tm_cast_i32_u32"}


@dataclass(frozen=True)
class CastParams:
    src: str
    dst: str
    count: int


@register
class Cast(OpDef):
    kinds = ("CAST",)
    options_type = {"CAST": 37}
    mixed_types = True
    untileable = "changes the element size (patch tiles are int8 boxes)"
    tflm_opdata = {"CAST": ""}
    tflm_options = {"CAST": 8}  # TfLiteCastParams (in, out type): ParseCast always allocates it
    header = "tm_cast.h"

    def decode(self, kind: str, ins: list, outs: list, opts: Table | None) -> dict[str, Any]:
        attrs = d.unary(ins, outs, opts)
        pair = (ins[0].dtype, outs[0].dtype)
        d.need(pair in PAIRS, f"CAST {pair[0]} → {pair[1]} is not supported (supported: "
               + ", ".join(f"{a}→{b}" for a, b in PAIRS) + ")")
        return attrs

    def params(self, op: Op, graph: Graph) -> CastParams:
        x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
        return CastParams(x.dtype, y.dtype, x.size)

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: Pad | None = None) -> list[np.ndarray]:
        x = inputs[0]
        assert x is not None
        p = self.params(op, graph)
        return [np.asarray(x).astype(np.int64).astype(p.dst) if p.dst != "float32"
                else np.asarray(x).astype(np.float32)]

    def emit(self, unit: Any, op: Op, step: Any, i: int) -> list[str]:
        p = self.params(op, unit.graph)
        src = unit.buffer_offset(step, op.inputs[0])
        dst = unit.buffer_offset(step, op.outputs[0])
        return [f"{PAIRS[(p.src, p.dst)]}(tm_arena + {src}, tm_arena + {dst}, {p.count});"]
