"""What every op module in ``kernels/`` provides (TinyEngine-style: one module per op).

The planner asks a kernel for scratch memory and in-place legality, the scheduler and
reports for MACs, the emulator runs it. Later the C code generator asks it to emit its call.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..ir import Graph, Op
from ..schedule import Region


class Kernel(Protocol):
    """The interface of an op module; ``kinds`` lists the TFLite builtin names it handles."""

    kinds: tuple[str, ...]

    def macs(self, op: Op, graph: Graph) -> int:
        """Multiply-accumulates for one full execution of ``op``."""
        ...

    # Optional: ``input_macs(op, graph) -> int``, the part of ``macs`` that scales with the
    # input area rather than the output's (see ``kernels.macs_split``); 0 when absent.

    def scratch_bytes(self, op: Op, graph: Graph, region: Region | None = None) -> int:
        """Temporary SRAM our runtime needs while ``op`` runs (0 if none); ``region`` is
        the part of activation input 0 a patch step reads (None: the whole tensor)."""
        ...

    def inplace(self, op: Op, graph: Graph) -> bool:
        """True if the output may occupy the memory of activation input 0."""
        ...

    def run(self, op: Op, graph: Graph, inputs: list[np.ndarray | None],
            pad: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
        """Compute the outputs, bit-exact with TFLite's reference kernels.

        ``inputs`` follow ``op.inputs``: activations as int8 NHWC arrays (possibly a tile),
        constants as their data, None for an absent optional input. ``pad`` (top, bottom,
        left, right) replaces the op's SAME/VALID padding when running on a tile.
        """
        ...
