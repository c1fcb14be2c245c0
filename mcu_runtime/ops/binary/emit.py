"""C emitter of the binary broadcasting ops (``tm_binary`` over a ``tm_bcast`` view)."""

from __future__ import annotations

import numpy as np

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step

#: axes ``tm_bcast`` walks
RANK = 4
_KINDS = {"MINIMUM": "TM_MINIMUM", "MAXIMUM": "TM_MAXIMUM",
          "SQUARED_DIFFERENCE": "TM_SQUARED_DIFFERENCE", "PRELU": "TM_PRELU", "DIV": "TM_DIV"}


def _arr(v: list[int]) -> str:
    return "{" + ", ".join(str(x) for x in v) + "}"


def _contiguous(shape: tuple[int, ...]) -> list[int]:
    return [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]


def _ext(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (1,) * (RANK - len(shape)) + tuple(shape)


def _view(unit: CUnit, op: Op, step: Step, pos: int, dims: tuple[int, ...]
          ) -> tuple[str, list[int]]:
    """(C pointer, element strides) of input ``pos`` walked over the output ``dims``."""
    g = unit.graph
    t = op.inputs[pos]
    tensor = g.tensors[t]
    ext = _ext(tensor.shape)
    if tensor.is_const:
        ptr = unit.tensor_array(t, f"op{op.index}_in{pos}")
        strides = _contiguous(ext)
    else:
        box = unit.in_box(step, t)
        ptr = f"(const int8_t *)(tm_arena + {box.offset})"
        strides = ([0, box.row, box.pix, 1] if len(tensor.shape) == 4 and tensor.shape[0] == 1
                   else _contiguous(ext))
    return ptr, [0 if e == 1 and n != 1 else s for e, n, s in zip(ext, dims, strides,
                                                                   strict=True)]


def broadcast_call_args(unit: CUnit, op: Op, step: Step, i: int) -> str:
    """``geometry, a, b, out`` of a ``tm_bcast`` walk for step ``i`` of a two-input op:
    the output's box (or whole tensor) and each input's strides over it (checked int8)."""
    g = unit.graph
    out_t = g.tensors[op.outputs[0]]
    for t in (*op.inputs[:2], op.outputs[0]):
        if g.tensors[t].dtype != "int8":
            raise TinymcuError(f"op {op.index} {op.kind} on {g.tensors[t].dtype}: the C "
                               f"runtime is int8 only")
    if len(out_t.shape) > RANK:
        raise TinymcuError(f"op {op.index} {op.kind} of rank {len(out_t.shape)}: the C "
                           f"runtime broadcasts up to {RANK} dimensions")
    box = unit.out_box(step, op)
    if len(out_t.shape) == 4 and out_t.shape[0] == 1:
        dims: tuple[int, ...] = (1, box.h, box.w, box.c)
        o_str = [0, box.row, box.pix, 1]
    else:
        dims = _ext(out_t.shape)
        o_str = _contiguous(dims)
    (pa, sa), (pb, sb) = _view(unit, op, step, 0, dims), _view(unit, op, step, 1, dims)
    geo = unit.op_params(op, f"bcast{i}", "tm_bcast",
                         lambda: c_struct(dims=_arr(list(dims)), a=_arr(sa), b=_arr(sb),
                                          o=_arr(o_str)))
    return f"{geo}, {pa}, {pb}, (int8_t *)(tm_arena + {box.offset})"


def emit_binary(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    args = broadcast_call_args(unit, op, step, i)

    def fields() -> str:
        p = get(op.kind).params(op, unit.graph)
        check_shift([p.a_shift, p.b_shift, p.out_shift], f"op {op.index} {op.kind}")
        return c_struct(kind=_KINDS[op.kind], a_zp=p.a_zp, b_zp=p.b_zp, out_zp=p.out_zp,
                        a_mult=p.a_mult, a_shift=p.a_shift, b_mult=p.b_mult,
                        b_shift=p.b_shift, out_mult=p.out_mult, out_shift=p.out_shift,
                        act_min=p.act_min, act_max=p.act_max)

    ref = unit.op_params(op, "binary", "tm_binary_params", fields)
    return [f"tm_binary({ref}, {args});"]
