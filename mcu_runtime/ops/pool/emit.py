"""C emitter of the pools (``tm_avg_pool`` / ``tm_max_pool``)."""

from __future__ import annotations

from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, require_maps, window_pad
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_pool(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = window_pad(op, unit.graph, step, src, dst)

    def fields() -> str:
        p = get(op.kind).params(op, unit.graph)
        return c_struct(kh=p.kernel[0], kw=p.kernel[1], sh=p.stride[0], sw=p.stride[1],
                        act_min=p.act_min, act_max=p.act_max)

    p = unit.op_params(op, "pool", "tm_pool_params", fields)
    fn = "tm_avg_pool" if op.kind == "AVERAGE_POOL_2D" else "tm_max_pool"
    return [f"{fn}({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]});"]
