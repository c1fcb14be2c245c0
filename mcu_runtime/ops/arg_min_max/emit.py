"""C emitter of ARG_MAX / ARG_MIN (``tm_arg_min_max`` in ``tm_arg_min_max.h``)."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_arg_min_max(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    p = get(op.kind).params(op, unit.graph)
    out = unit.graph.tensors[op.outputs[0]]
    if unit.graph.tensors[op.inputs[0]].is_const:
        raise TinymcuError(f"op {op.index} {op.kind} reads a constant; nothing to run")
    ref = unit.op_params(op, "arg", "tm_arg_params", lambda: c_struct(
        outer=p.outer, axis_size=p.axis_size, inner=p.inner, is_max=int(p.is_max),
        out_bytes=out.nbytes // max(out.size, 1)))
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_arg_min_max({ref}, (const int8_t *)(tm_arena + {src}), tm_arena + {dst});"]
