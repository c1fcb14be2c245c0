"""C emitter of the reductions (``tm_reduce``), for REDUCE_MAX/MIN, SUM and general MEAN."""

from __future__ import annotations

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, check_shift, int8_io
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.schedule import Step

#: input dimensions ``tm_reduce_params`` walks
RANK = 4
_KINDS = {"REDUCE_MAX": "TM_REDUCE_MAX", "REDUCE_MIN": "TM_REDUCE_MIN", "SUM": "TM_REDUCE_RESCALE",
          "MEAN": "TM_REDUCE_RESCALE"}


def _arr(v: list[int]) -> str:
    return "{" + ", ".join(str(x) for x in v) + "}"


def emit_reduce(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    int8_io(op, g)
    p = get(op.kind).params(op, g)
    shape = g.tensors[op.inputs[0]].shape
    if len(shape) > RANK:
        raise TinymcuError(f"op {op.index} {op.kind} of rank {len(shape)}: the C runtime "
                           f"reduces up to {RANK} dimensions")
    pad = RANK - len(shape)
    dims = [1] * pad + list(shape)
    reduced = {a + pad for a in p.axes}
    ostr = [0] * RANK
    stride = 1
    for k in reversed(range(RANK)):
        if k not in reduced:
            ostr[k] = stride
            stride *= dims[k]
    rescale = _KINDS[op.kind] == "TM_REDUCE_RESCALE"

    def fields() -> str:
        if rescale:
            check_shift(p.shift, f"op {op.index} {op.kind}")
        return c_struct(kind=_KINDS[op.kind], dims=_arr(dims), ostr=_arr(ostr),
                        out_size=g.tensors[op.outputs[0]].size, count=p.count, mult=p.mult,
                        shift=p.shift, in_zp=p.in_zp, out_zp=p.out_zp)

    ref = unit.op_params(op, "reduce", "tm_reduce_params", fields)
    src = unit.buffer_offset(step, op.inputs[0])
    dst = unit.buffer_offset(step, op.outputs[0])
    acc = "NULL"
    if rescale:
        scratch = unit.scratch(i)
        if scratch is None:
            raise TinymcuError(f"op {op.index} {op.kind}: the plan has no scratch for its sums")
        acc = f"(int32_t *){scratch}"
    return [f"tm_reduce({ref}, (const int8_t *)(tm_arena + {src}), "
            f"(int8_t *)(tm_arena + {dst}), {acc});"]
