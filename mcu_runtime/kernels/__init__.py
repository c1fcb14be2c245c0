"""Op kernels, one module per op family, and the registry that maps a TFLite op name to one.

Each module follows :class:`~.base.Kernel`: numpy int8 reference implementations bit-exact
with TFLite's reference kernels, plus the memory facts (scratch, in-place) the planner needs.
"""

from __future__ import annotations

from types import ModuleType

from ...errors import TinymcuError
from ..ir import Graph, Op
from ..schedule import Step
from . import (
    activation,
    conv,
    depthwise,
    elementwise,
    expand_depthwise,
    fully_connected,
    mean,
    pool,
    shape_ops,
)
from .base import Kernel

_MODULES: tuple[ModuleType, ...] = (conv, depthwise, expand_depthwise, fully_connected,
                                    elementwise, pool, mean, activation, shape_ops)

REGISTRY: dict[str, ModuleType] = {kind: m for m in _MODULES for kind in m.kinds}

#: op kinds our graph passes create; no .tflite contains them (``passes.FUSED_KIND``)
INTERNAL_KINDS = frozenset(expand_depthwise.kinds)


def get(kind: str) -> Kernel:
    """The kernel module for TFLite builtin op ``kind``; TinymcuError if we have none."""
    try:
        return REGISTRY[kind]  # type: ignore[return-value]
    except KeyError:
        raise TinymcuError(
            f"unsupported op {kind} (supported: {', '.join(supported())})") from None


def step_scratch(graph: Graph, step: Step) -> int:
    """Scratch bytes one schedule step needs (a patch step's scratch follows its tile)."""
    op = graph.ops[step.op]
    return get(op.kind).scratch_bytes(op, graph, step.in_region)


def macs_split(op: Op, graph: Graph) -> tuple[int, int]:
    """The op's MACs as (scaling with the output area, scaling with the input area).

    Almost every op's work follows its output; a fused op whose first part runs over every
    input pixel it reads (``Kernel.input_macs``) has an input-proportional share, which a
    patch step pays over its whole input region, halo included.
    """
    kernel = get(op.kind)
    total = kernel.macs(op, graph)
    per_input = kernel.input_macs(op, graph) if hasattr(kernel, "input_macs") else 0
    return total - per_input, per_input


def step_macs(graph: Graph, step: Step) -> int:
    """MACs of one schedule step: the op's full MACs scaled by the share of the output (and,
    for a fused op's first part, of the input) a patch step covers."""
    op = graph.ops[step.op]
    per_output, per_input = macs_split(op, graph)
    out = graph.tensors[op.outputs[0]].shape
    if step.out_region is not None and len(out) == 4:
        per_output = per_output * step.out_region.h * step.out_region.w // (out[1] * out[2])
    inp = graph.tensors[op.inputs[0]].shape
    if per_input and step.in_region is not None:
        per_input = per_input * step.in_region.h * step.in_region.w // (inp[1] * inp[2])
    return per_output + per_input


def supported() -> list[str]:
    """The TFLite ops the emulator (and our runtime) can run."""
    return sorted(set(REGISTRY) - INTERNAL_KINDS)
