"""C emitter of SOFTMAX (``tm_softmax``, rows of the last axis)."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, int8_io
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_softmax(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    wide = g.tensors[op.outputs[0]].dtype == "int16"
    if not wide:
        int8_io(op, g)
    elif step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} SOFTMAX to int16 runs on whole tensors only")
    p = get(op.kind).params(op, g)
    if not 0 <= p.left_shift <= 31:
        raise TinymcuError(f"op {op.index} SOFTMAX: input scale gives shift {p.left_shift}")
    ref = unit.op_params(op, "softmax", "tm_softmax_params",
                         lambda: c_struct(mult=p.mult, left_shift=p.left_shift,
                                          diff_min=p.diff_min))
    t = g.tensors[op.inputs[0]]
    depth = int(t.shape[-1]) if t.shape else 1
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    if wide:
        dst_off = unit.buffer_offset(step, op.outputs[0])
        return [f"tm_softmax16({ref}, (const int8_t *)(tm_arena + {src.offset}), "
                f"(int16_t *)(void *)(tm_arena + {dst_off}), {t.size // depth}, {depth});"]
    return [f"tm_softmax({ref}, (const int8_t *)(tm_arena + {src.offset}), "
            f"(int8_t *)(tm_arena + {dst.offset}), {t.size // depth}, {depth});"]
