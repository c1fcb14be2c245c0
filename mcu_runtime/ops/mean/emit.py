"""C emitter of MEAN: over H and W of a batch-1 NHWC map one channel at a time
(``tm_mean_hw``); over any other axes the reduce family's ``tm_reduce`` with int32 sums."""

from __future__ import annotations

from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_mean(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    p = get(op.kind).params(op, g)
    shape = g.tensors[op.inputs[0]].shape
    if len(shape) != 4 or shape[0] != 1 or set(p.axes) != {1, 2}:
        from tinymcu.mcu_runtime.ops.reduce.emit import emit_reduce
        return emit_reduce(unit, op, step, i)

    def fields() -> str:
        check_shift(p.shift, f"op {op.index} MEAN")
        return c_struct(count=p.count, mult=p.mult, shift=p.shift, in_zp=p.in_zp,
                        out_zp=p.out_zp)

    ref = unit.op_params(op, "mean", "tm_mean_params", fields)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    return [f"tm_mean_hw({ref}, {unit.ref(src)}, (int8_t *)(tm_arena + {dst.offset}));"]
