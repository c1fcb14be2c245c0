"""C emitter of the fused EXPAND_DEPTHWISE (``tm_expand_depthwise``): both parts' conv
parameter structs plus the planned one-channel scratch plane."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, require_maps, window_pad
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops.conv.emit import conv_fields
from tinymcu.mcu_runtime.schedule import Step


def emit_expand_depthwise(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    expand, dw = op.attrs["expand"], op.attrs["depthwise"]
    require_maps(op, unit.graph)
    if unit.graph.tensors[expand.inputs[1]].shape[1:3] != (1, 1) \
            or tuple(expand.attrs.get("stride", (1, 1))) != (1, 1):
        raise TinymcuError(f"op {op.index} EXPAND_DEPTHWISE: the expand must be 1x1, stride 1")
    src, dst = unit.in_box(step, op.inputs[0]), unit.out_box(step, op)
    pad = window_pad(op, unit.graph, step, src, dst)
    p = unit.op_params(op, "xdw", "tm_expand_dw_params", lambda: c_struct(
        expand=conv_fields(unit, expand, f"op{op.index}_expand", kbias=True),
        dw=conv_fields(unit, dw, f"op{op.index}_dw")))
    scratch = unit.scratch(i)
    if scratch is None:
        raise TinymcuError(f"op {op.index} EXPAND_DEPTHWISE has no scratch plane in the plan")
    return [f"tm_expand_depthwise({p}, {unit.ref(src)}, {unit.ref(dst)}, {pad[0]}, {pad[2]}, "
            f"{scratch});"]
