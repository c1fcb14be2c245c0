"""C emitter of the resizes (``tm_resize`` with the row/column tables of ``params()``)."""

from __future__ import annotations

import numpy as np

from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, int8_io, require_maps
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_resize(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    require_maps(op, g)
    int8_io(op, g)

    def fields() -> str:
        p = get(op.kind).params(op, g)
        tabs = {k: unit.array(f"op{op.index}_{k}", "int32_t", np.asarray(getattr(p, k)))
                for k in ("y0", "y1", "wy", "x0", "x1", "wx")}
        return c_struct(bilinear=int(p.bilinear), **tabs)

    ref = unit.op_params(op, "resize", "tm_resize_params", fields)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    return [f"tm_resize({ref}, {unit.ref(src)}, {unit.ref(dst)});"]
