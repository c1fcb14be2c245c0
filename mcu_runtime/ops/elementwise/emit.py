"""C emitter of ADD/SUB/MUL: ``tm_eltwise`` on two activation boxes of the output's shape,
``tm_eltwise_bcast`` (the binary family's strided walk) when an operand is a constant or
broadcasts."""

from __future__ import annotations

from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.binary.emit import broadcast_call_args
from tinymcu.mcu_runtime.schedule import Step


def emit_elementwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    a, b = op.inputs[0], op.inputs[1]
    out_shape = g.tensors[op.outputs[0]].shape
    bcast = any(g.tensors[t].is_const or g.tensors[t].shape != out_shape for t in (a, b))

    def fields() -> str:
        p = get(op.kind).params(op, g)
        check_shift([p.a_shift, p.b_shift, p.out_shift], f"op {op.index} {op.kind}")
        kind = {"ADD": "TM_ADD", "SUB": "TM_SUB", "MUL": "TM_MUL"}[op.kind]
        return c_struct(kind=kind, a_zp=p.a_zp, b_zp=p.b_zp, out_zp=p.out_zp, a_mult=p.a_mult,
                        a_shift=p.a_shift, b_mult=p.b_mult, b_shift=p.b_shift,
                        out_mult=p.out_mult, out_shift=p.out_shift, act_min=p.act_min,
                        act_max=p.act_max)

    p = unit.op_params(op, "elt", "tm_eltwise_params", fields)
    if bcast:
        return [f"tm_eltwise_bcast({p}, {broadcast_call_args(unit, op, step, i)});"]
    a_box, b_box = unit.in_box(step, a), unit.in_box(step, b)
    return [f"tm_eltwise({p}, {unit.ref(a_box)}, {unit.ref(b_box)}, "
            f"{unit.ref(unit.out_box(step, op))});"]
