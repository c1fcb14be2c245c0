"""C emitter of DEPTHWISE_CONV_2D: ``tm_depthwise`` or, when the planner put the output over
the input (a scratch plane is planned), ``tm_depthwise_inplace`` (``tm_depthwise.h``); a
bitmask filter (``--sparse``) takes their sparse entry points ``tm_depthwise_masked`` and
``tm_depthwise_masked_inplace``, so only a sparse build links the sparse walk."""

from __future__ import annotations

from tinymcu.mcu_runtime.codegen.emitters import CUnit, require_maps, window_pad
from tinymcu.mcu_runtime.codegen.sparse import filter_rows
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops.conv.emit import conv_fields
from tinymcu.mcu_runtime.ops.depthwise import inplace_group
from tinymcu.mcu_runtime.schedule import Step


def emit_depthwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    require_maps(op, unit.graph)
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "dw", "tm_conv_params",
                       lambda: conv_fields(unit, op, f"op{op.index}"))
    scratch = unit.scratch(i)
    masked = unit.filter_format(op) == "mask"
    if masked:  # the channels' tap tables; a padded plane (in place, group 4) has no border
        unit.note_sparse_taps(filter_rows(op, unit.graph), scratch is None
                              or inplace_group(op, unit.graph) == 1)
    if scratch is not None:  # the planner may have put the output over the input
        group = inplace_group(op, unit.graph)
        if masked:
            return [f"tm_depthwise_masked_inplace({p}, {unit.ref(src)}, {unit.ref(dst)}, "
                    f"{pad[0]}, {pad[2]}, {scratch}, {group});"]
        return [f"tm_depthwise_inplace({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, "
                f"{pad[2]}, {scratch}, {group});"]
    kernel = "tm_depthwise_masked" if masked else "tm_depthwise"
    return [f"{kernel}({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]});"]
