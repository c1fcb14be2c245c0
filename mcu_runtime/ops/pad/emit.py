"""C emitter of PAD/PADV2: fill the output box, copy the input into its inner box."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, copy_box, int8_io, require_maps
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step


def emit_pad(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    int8_io(op, g)
    require_maps(op, g)
    p = get(op.kind).params(op, g)
    widths: list[tuple[int, int]]
    if step.pad is not None:  # a tile: only the part of the border inside it
        widths = [(0, 0), (step.pad[0], step.pad[1]), (step.pad[2], step.pad[3]), (0, 0)]
    else:
        widths = list(p.widths) if p.widths is not None else []
        if not widths or widths[0] != (0, 0) or min(min(w) for w in widths) < 0:
            raise TinymcuError(f"op {op.index} {op.kind}: the C runtime needs constant, "
                               f"non-negative paddings and none on the batch axis")
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    if [src.h + sum(widths[1]), src.w + sum(widths[2]), src.c + sum(widths[3])] != \
            [dst.h, dst.w, dst.c]:
        raise TinymcuError(f"op {op.index} {op.kind}: paddings {widths} do not turn the "
                           f"{src.h}x{src.w}x{src.c} input into the {dst.h}x{dst.w}x{dst.c} output")
    inner = dst.sub(widths[1][0], widths[2][0], widths[3][0], src.h, src.w, src.c)
    return [f"tm_fill_box({unit.ref(dst)}, {p.value});", copy_box(unit, src, inner, None)]
