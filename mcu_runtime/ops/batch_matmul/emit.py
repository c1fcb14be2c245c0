"""C emitter of BATCH_MATMUL (``tm_batch_matmul`` in ``tm_batch_matmul.h``)."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def operand(unit: CUnit, op: Op, step: Step, t: int, name: str) -> str:
    """A C expression for an int8 operand: its constant array or its arena buffer."""
    tensor = unit.graph.tensors[t]
    if tensor.dtype != "int8":
        raise TinymcuError(f"op {op.index} {op.kind} on {tensor.dtype}: the C runtime is int8 "
                           f"only")
    if tensor.is_const:
        return unit.tensor_array(t, name)
    return f"(const int8_t *)(tm_arena + {unit.buffer_offset(step, t)})"


def emit_batch_matmul(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    p = get(op.kind).params(op, unit.graph)
    check_shift(p.shift, f"op {op.index} {op.kind}")

    def arr(v: tuple[int, ...]) -> str:
        return "{" + ", ".join(str(x) for x in v) + "}"

    def fields() -> str:
        return c_struct(batch=arr(p.batch), lhs_bstride=arr(p.lhs_bstride),
                        rhs_bstride=arr(p.rhs_bstride), rows=p.rows, depth=p.depth,
                        cols=p.cols, lhs_row=p.lhs_strides[0], lhs_k=p.lhs_strides[1],
                        rhs_k=p.rhs_strides[0], rhs_col=p.rhs_strides[1], lhs_zp=p.lhs_zp,
                        rhs_zp=p.rhs_zp, out_zp=p.out_zp, mult=p.mult, shift=p.shift)

    ref = unit.op_params(op, "bmm", "tm_batch_matmul_params", fields)
    lhs = operand(unit, op, step, op.inputs[0], f"op{op.index}_lhs")
    rhs = operand(unit, op, step, op.inputs[1], f"op{op.index}_rhs")
    if unit.graph.tensors[op.outputs[0]].dtype != "int8":
        raise TinymcuError(f"op {op.index} {op.kind}: the C runtime is int8 only")
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_batch_matmul({ref}, {lhs}, {rhs}, (int8_t *)(tm_arena + {dst}));"]
