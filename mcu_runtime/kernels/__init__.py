"""Op kernels, one module per op family, and the registry that maps a TFLite op name to one.

Each module follows :class:`~.base.Kernel`: numpy int8 reference implementations bit-exact
with TFLite's reference kernels, plus the memory facts (scratch, in-place) the planner needs.
"""

from __future__ import annotations

from types import ModuleType

from ...errors import TinymcuError
from ..ir import Graph
from ..schedule import Step
from . import (
    activation,
    conv,
    depthwise,
    elementwise,
    fully_connected,
    mean,
    pool,
    shape_ops,
)
from .base import Kernel

_MODULES: tuple[ModuleType, ...] = (conv, depthwise, fully_connected, elementwise, pool, mean,
                                    activation, shape_ops)

REGISTRY: dict[str, ModuleType] = {kind: m for m in _MODULES for kind in m.kinds}


def get(kind: str) -> Kernel:
    """The kernel module for TFLite builtin op ``kind``; TinymcuError if we have none."""
    try:
        return REGISTRY[kind]  # type: ignore[return-value]
    except KeyError:
        raise TinymcuError(
            f"unsupported op {kind} (supported: {', '.join(sorted(REGISTRY))})") from None


def step_scratch(graph: Graph, step: Step) -> int:
    """Scratch bytes one schedule step needs (a patch step's scratch follows its tile)."""
    op = graph.ops[step.op]
    return get(op.kind).scratch_bytes(op, graph, step.in_region)


def step_macs(graph: Graph, step: Step) -> int:
    """MACs of one schedule step: the op's full MACs scaled by the share of the output a
    patch step computes."""
    op = graph.ops[step.op]
    macs = get(op.kind).macs(op, graph)
    out = graph.tensors[op.outputs[0]].shape
    if step.out_region is not None and len(out) == 4:
        macs = macs * step.out_region.h * step.out_region.w // (out[1] * out[2])
    return macs


def supported() -> list[str]:
    """The op kinds the emulator (and our runtime) can run."""
    return sorted(REGISTRY)
