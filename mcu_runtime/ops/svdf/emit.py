"""C emitter of SVDF (``tm_svdf``): the state buffer is updated in place in the arena."""

from __future__ import annotations

from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.svdf import STATE
from tinymcu.mcu_runtime.schedule import Step


def emit_svdf(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph

    def fields() -> str:
        p = get(op.kind).params(op, g)
        check_shift([p.shift1, p.shift2], f"op {op.index} SVDF")
        tag = f"op{op.index}"
        wt = unit.tensor_array(op.inputs[2], f"{tag}_time")
        wide = p.state_dtype == "int16"
        return c_struct(w_feature=unit.tensor_array(op.inputs[1], f"{tag}_feature"),
                        w_time16=wt if wide else "NULL", w_time8="NULL" if wide else wt,
                        bias=unit.tensor_array(op.inputs[3], f"{tag}_bias"),
                        batches=p.batches, inputs=p.inputs, filters=p.filters, rank=p.rank,
                        units=p.units, memory=p.memory, in_zp=p.in_zp, state_zp=p.state_zp,
                        out_zp=p.out_zp, mult1=p.mult1, shift1=p.shift1, mult2=p.mult2,
                        shift2=p.shift2)

    ref = unit.op_params(op, "svdf", "tm_svdf_params", fields)
    src = unit.buffer_offset(step, op.inputs[0])
    state = unit.buffer_offset(step, op.inputs[STATE])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_svdf({ref}, (const int8_t *)(tm_arena + {src}), "
            f"(void *)(tm_arena + {state}), (int8_t *)(tm_arena + {dst}));"]
