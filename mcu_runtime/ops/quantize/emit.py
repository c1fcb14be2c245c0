"""C emitters of QUANTIZE and DEQUANTIZE.

8-bit → 8-bit QUANTIZE (int8/uint8 either side) is a 256-entry table indexed by the input
byte, made by running the op's own kernel on every code (``tm_copy_box``); float32 → 8-bit
QUANTIZE and 8-bit → float32 DEQUANTIZE call ``tm_quantize_f32``/``tm_dequantize_f32`` on
whole tensors (the model's float ends).
"""

from __future__ import annotations

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift, copy_box
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step

_BYTES = ("int8", "uint8")
#: integer code types ``tm_requantize`` reads and writes, by its type number
_CODES = {"int8": 1, "uint8": 2, "int16": 3, "int32": 4}


def _byte_lut(unit: CUnit, op: Op) -> str:
    """Table entry ``b + 128`` for the input byte whose int8 reading is ``b``."""
    g = unit.graph
    in_dtype = g.tensors[op.inputs[0]].dtype
    codes = np.arange(-128, 128, dtype=np.int8).view(in_dtype)
    table = np.asarray(get(op.kind).run(op, g, [codes])[0]).view(np.int8)
    return unit.array(f"op{op.index}_lut", "int8_t", table.ravel())


def _float_fields(unit: CUnit, op: Op, t: int) -> str:
    g = unit.graph
    p = get(op.kind).params(op, g)
    unsigned = int(g.tensors[t].dtype == "uint8")
    if op.kind == "QUANTIZE":
        return c_struct(scale=repr(float(p.out_scale)), zero_point=p.out_zp, qmin=p.qmin,
                        qmax=p.qmax, is_unsigned=unsigned)
    return c_struct(scale=repr(float(p.scale)), zero_point=p.zp, qmin=0, qmax=0,
                    is_unsigned=unsigned)


def emit_quantize(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    src_t, dst_t = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if src_t.dtype in _BYTES and dst_t.dtype in _BYTES and op.kind == "QUANTIZE":
        return [copy_box(unit, unit.in_box(step, op.inputs[0]), unit.out_box(step, op),
                         _byte_lut(unit, op))]
    if op.kind == "QUANTIZE" and src_t.dtype in _CODES and dst_t.dtype in _CODES:
        return _requantize(unit, op, step)
    floats = (op.kind == "QUANTIZE" and src_t.dtype == "float32" and dst_t.dtype in _BYTES) \
        or (op.kind == "DEQUANTIZE" and src_t.dtype in _BYTES and dst_t.dtype == "float32")
    if not floats:
        raise TinymcuError(f"op {op.index} {op.kind} from {src_t.dtype} to {dst_t.dtype} is "
                           f"not supported by the C runtime")
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} {op.kind} with a float side runs on whole tensors "
                           f"only in the C runtime (use --schedule layer)")
    code_t = op.outputs[0] if op.kind == "QUANTIZE" else op.inputs[0]
    ref = unit.op_params(op, "q", "tm_quant_params", lambda: _float_fields(unit, op, code_t))
    fn = "tm_quantize_f32" if op.kind == "QUANTIZE" else "tm_dequantize_f32"
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"{fn}({ref}, tm_arena + {src}, tm_arena + {dst}, {dst_t.size});"]


def _requantize(unit: CUnit, op: Op, step: Step) -> list[str]:
    """QUANTIZE between integer types wider than a byte (a keyword model's int16 input or
    int32 output): ``tm_requantize`` on the whole tensor with the op's own params."""
    g = unit.graph
    if step.in_region is not None or step.out_region is not None:
        raise TinymcuError(f"op {op.index} QUANTIZE between "
                           f"{g.tensors[op.inputs[0]].dtype} and "
                           f"{g.tensors[op.outputs[0]].dtype} runs on whole tensors only")
    p = get(op.kind).params(op, g)
    check_shift(p.shift, f"op {op.index} QUANTIZE")
    ref = unit.op_params(op, "rq", "tm_requant_params", lambda: c_struct(
        mult=p.mult, shift=p.shift, in_zp=p.in_zp, out_zp=p.out_zp,
        qmin=p.qmin if p.qmin > -(2**31) else "INT32_MIN",
        qmax=p.qmax if p.qmax < 2**31 - 1 else "INT32_MAX",
        in_type=_CODES[g.tensors[op.inputs[0]].dtype], out_type=_CODES[p.out_dtype]))
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_requantize({ref}, tm_arena + {src}, tm_arena + {dst}, "
            f"{g.tensors[op.outputs[0]].size});"]
