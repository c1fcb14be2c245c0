"""C emitter of TRANSPOSE_CONV (``tm_transpose_conv`` in ``tm_transpose_conv.h``)."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.transpose_conv import BIAS, FILTER, INPUT
from tinymcu.mcu_runtime.schedule import Step


def emit_transpose_conv(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    for t in (op.inputs[INPUT], op.outputs[0]):
        if g.tensors[t].shape[0] != 1 or g.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} TRANSPOSE_CONV: the C runtime needs batch-1 "
                               f"int8 NHWC maps")
    p = get(op.kind).params(op, g)
    check_shift(p.shift, f"op {op.index} {op.kind}")
    tag = f"op{op.index}"

    def fields() -> str:
        bias = op.inputs[BIAS] if len(op.inputs) > BIAS else -1
        return c_struct(
            filter=unit.tensor_array(op.inputs[FILTER], f"{tag}_filter"),
            bias=unit.tensor_array(bias, f"{tag}_bias"),
            mult=unit.array(f"{tag}_mult", "int32_t", p.mult),
            shift=unit.array(f"{tag}_shift", "int8_t", p.shift),
            kh=p.kernel[0], kw=p.kernel[1], sh=p.stride[0], sw=p.stride[1], pad_top=p.pad[0],
            pad_left=p.pad[1], in_zp=p.in_zp, out_zp=p.out_zp, act_min=p.act_min,
            act_max=p.act_max)

    ref = unit.op_params(op, "tconv", "tm_transpose_conv_params", fields)
    src = unit.box(step, op.inputs[INPUT], None)
    dst = unit.box(step, op.outputs[0], None)
    return [f"tm_transpose_conv({ref}, {unit.ref(src)}, {unit.ref(dst)});"]
