"""The op registry: every op family lives in one folder, ``ops/<family>/``, and registers
its :class:`~tinymcu.mcu_runtime.ops.base.OpDef` with :func:`register`.

The folders are discovered (every subpackage of this package is imported once, on first
use), so adding an op is adding a folder: the reader's supported set and option decoders,
the kernel lookup, the C emitter table, the TFLM arena tables and the patch scheduler's
kind sets are all derived here from the registered OpDefs. ``tests/test_registry.py``
checks every accepted op has all its parts.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TypeVar

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.ir import Graph, Op
from tinymcu.mcu_runtime.ops.base import OpDef
from tinymcu.mcu_runtime.schedule import Step

__all__ = ["OpDef", "alias_kinds", "all_defs", "c_kinds", "get", "header_paths",
           "internal_kinds", "macs_split", "register", "registry", "step_macs", "step_scratch",
           "supported", "tiling_kinds", "tflite_kinds"]

_REGISTRY: dict[str, OpDef] = {}
_DEFS: list[OpDef] = []
_LOADED = False

D = TypeVar("D", bound=type[OpDef])


def register(cls: D) -> D:
    """Class decorator: register one instance of ``cls`` for each of its ``kinds``."""
    inst = cls()
    for kind in cls.kinds:
        if kind in _REGISTRY:
            raise RuntimeError(f"op kind {kind} registered twice ({type(_REGISTRY[kind])} and "
                               f"{cls})")
        _REGISTRY[kind] = inst
    _DEFS.append(inst)
    return cls


def _load() -> None:
    """Import every op folder once (their ``@register`` calls fill the registry)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.ispkg:
            importlib.import_module(f"{__name__}.{info.name}")


def registry() -> dict[str, OpDef]:
    """Op kind → its OpDef (TFLite and internal kinds)."""
    _load()
    return _REGISTRY


def all_defs() -> list[OpDef]:
    """Every registered OpDef (one per family)."""
    _load()
    return list(_DEFS)


def get(kind: str) -> OpDef:
    """The OpDef for op ``kind``; TinymcuError if we have none."""
    try:
        return registry()[kind]
    except KeyError:
        raise TinymcuError(
            f"unsupported op {kind} (supported: {', '.join(supported())})") from None


def internal_kinds() -> frozenset[str]:
    """Op kinds our graph passes create; no .tflite contains them."""
    return frozenset(k for k, d in registry().items() if d.internal)


def tflite_kinds() -> frozenset[str]:
    """The TFLite builtin ops the reader accepts: every registered non-internal kind."""
    return frozenset(registry()) - internal_kinds()


def supported() -> list[str]:
    """The TFLite ops the emulator (and our runtime) can run."""
    return sorted(tflite_kinds())


def c_kinds() -> frozenset[str]:
    """Op kinds with a C emitter (the OpDef overrides ``emit``)."""
    return frozenset(k for k, d in registry().items() if type(d).emit is not OpDef.emit
                     and (d.c_kinds is None or k in d.c_kinds))


def alias_kinds() -> frozenset[str]:
    """Op kinds whose output is the input's bytes relabelled (RESHAPE, SQUEEZE)."""
    return frozenset(k for k, d in registry().items() if d.alias)


def tiling_kinds(tiling: str) -> frozenset[str]:
    """Op kinds whose OpDef declares ``tiling`` ("pointwise", "window" or "pad")."""
    return frozenset(k for k, d in registry().items() if d.tiling == tiling)


def header_paths() -> list[Path]:
    """The C headers of every op folder (beside their OpDef's module)."""
    out = []
    for d in all_defs():
        if d.header is not None:
            folder = Path(importlib.import_module(type(d).__module__).__file__ or "").parent
            out.append(folder / d.header)
    return sorted(set(out))


def step_scratch(graph: Graph, step: Step) -> int:
    """Scratch bytes one schedule step needs (a patch step's scratch follows its tile)."""
    op = graph.ops[step.op]
    return get(op.kind).scratch_bytes(op, graph, step.in_region)


def macs_split(op: Op, graph: Graph) -> tuple[int, int]:
    """The op's MACs as (scaling with the output area, scaling with the input area).

    Almost every op's work follows its output; a fused op whose first part runs over every
    input pixel it reads (``OpDef.input_macs``) has an input-proportional share, which a
    patch step pays over its whole input region, halo included.
    """
    d = get(op.kind)
    total = d.macs(op, graph)
    per_input = d.input_macs(op, graph)
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
