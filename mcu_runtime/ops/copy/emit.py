"""C emitter of the data-movement ops: fills as ``memset``, every copy as one
``tm_strided_copy`` with its walk in a ``tm_copy_params`` struct in flash."""

from __future__ import annotations

from functools import partial

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct
from tinymcu.mcu_runtime.ir import Op
from tinymcu.mcu_runtime.ops import get
from tinymcu.mcu_runtime.ops.copy.plan import MAX_RANK, Copy, CopyParams, identity
from tinymcu.mcu_runtime.schedule import Step


def _arr(v: tuple[int, ...]) -> str:
    return "{" + ", ".join(str(x) for x in (v or (0,))) + "}"


def _fields(c: Copy) -> str:
    return c_struct(rank=len(c.dims), dims=_arr(c.dims), src=_arr(c.src_strides),
                    dst=_arr(c.dst_strides))


def as_bytes(c: Copy, width: int) -> Copy:
    """A copy of ``width``-byte elements as a copy of bytes (offsets and strides scaled, the
    element's bytes as a new innermost axis)."""
    return Copy(c.src, c.dst, (*c.dims, width), c.src_off * width,
                (*(s * width for s in c.src_strides), 1), c.dst_off * width,
                (*(s * width for s in c.dst_strides), 1))


def emit_copies(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    g = unit.graph
    p = get(op.kind).params(op, g)
    sizes = {g.tensors[t].nbytes // g.tensors[t].size
             for t in {*(op.inputs[c.src] for c in p.copies), *op.outputs}}
    if len(sizes) != 1 or (p.fills and sizes != {1}):
        raise TinymcuError(f"op {op.index} {op.kind}: the C runtime moves elements of one "
                           "width (and fills int8 only)")
    width = sizes.pop()
    if width > 1:  # wider elements: the same walk over bytes, one more axis of `width`
        p = CopyParams(tuple(as_bytes(c, width) for c in p.copies), p.fills)
    lines = []
    for k, value in p.fills:
        t = op.outputs[k]
        lines.append(f"memset(tm_arena + {unit.buffer_offset(step, t)}, (int8_t){value}, "
                     f"{g.tensors[t].nbytes});")
    for n, c in enumerate(p.copies):
        if len(c.dims) > MAX_RANK:
            raise TinymcuError(f"op {op.index} {op.kind}: a copy walks {len(c.dims)} axes; the C "
                               f"runtime walks up to {MAX_RANK}")
        src_t, dst_t = op.inputs[c.src], op.outputs[c.dst]
        dst = unit.buffer_offset(step, dst_t)
        if g.tensors[src_t].is_const:
            src = unit.tensor_array(src_t, f"op{op.index}_in{c.src}")
        else:
            offset = unit.buffer_offset(step, src_t)
            if offset == dst and identity(c):
                lines.append("/* in place: these bytes are already where they belong */")
                continue
            src = f"(const int8_t *)(tm_arena + {offset})"
        ref = unit.op_params(op, f"copy{n}", "tm_copy_params", partial(_fields, c))
        lines.append(f"tm_strided_copy({ref}, {src} + {c.src_off}, "
                     f"(int8_t *)(tm_arena + {dst}) + {c.dst_off});")
    return lines



def emit_gather(unit: CUnit, op: Op, step: Step, i: int) -> list[str]:
    """GATHER with run-time indices: ``tm_gather`` over the params rows."""
    g = unit.graph
    p = get(op.kind).params(op, g)
    x = op.inputs[0]
    src = (unit.tensor_array(x, f"op{op.index}_params") if g.tensors[x].is_const
           else f"(const int8_t *)(tm_arena + {unit.buffer_offset(step, x)})")
    if g.tensors[op.inputs[1]].is_const:
        raise TinymcuError(f"op {op.index} GATHER: constant indices run as copies")
    idx = unit.buffer_offset(step, op.inputs[1])
    dst = unit.buffer_offset(step, op.outputs[0])
    return [f"tm_gather({src}, tm_arena + {idx}, (int8_t *)(tm_arena + {dst}), {p.outer}, "
            f"{p.axis_size}, {p.inner}, {p.count}, {p.index_bytes});"]
