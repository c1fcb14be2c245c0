"""C emitter of TRANSPOSE (``tm_transpose``: an odometer walk over the output)."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, int8_io
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step

#: dimensions ``tm_transpose_params`` holds (TFLM's reference kernel takes up to 6 too)
MAX_RANK = 6


def emit_transpose(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    int8_io(op, g)
    p = get(op.kind).params(op, g)
    if len(p.perm) > MAX_RANK:
        raise TinymcuError(f"op {op.index} TRANSPOSE of rank {len(p.perm)}: the C runtime "
                           f"transposes up to {MAX_RANK} dimensions")

    def fields() -> str:
        def arr(v: tuple[int, ...]) -> str:
            return "{" + ", ".join(str(x) for x in v) + "}"
        return c_struct(rank=len(p.perm), dims=arr(p.out_dims), strides=arr(p.in_strides))

    ref = unit.op_params(op, "transpose", "tm_transpose_params", fields)
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_transpose({ref}, (const int8_t *)(tm_arena + {src}), "
            f"(int8_t *)(tm_arena + {dst}));"]
