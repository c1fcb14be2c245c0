"""Schedules: the order in which ops run and which SRAM buffers each step touches.

A schedule is plain data (JSON round-trips), produced by :func:`layer_schedule` or the patch
scheduler (``patch.py``) and consumed by the planner (liveness → offsets), the emulator
(execution inside the arena) and the C code generator. A *buffer* is a piece of SRAM the
planner places: a whole activation tensor, or one tile of it in a patch stage.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from tinymcu.mcu_runtime.ir import Graph


@dataclass(frozen=True)
class Region:
    """Half-open box ``[y0, y1) × [x0, x1)`` over the H and W axes of an NHWC tensor."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def h(self) -> int:
        return self.y1 - self.y0

    @property
    def w(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class Buffer:
    """SRAM for a whole tensor (``region`` None) or for the ``region`` tile of it.

    ``stream``: a tile of a graph input that the caller's read function fills right before
    the one step that reads it (``patch.streamed_schedule``), so it lives for that step only
    instead of from step 0; the whole input then never is in the arena."""

    name: str
    tensor: int
    nbytes: int
    region: Region | None = None
    stream: bool = False


@dataclass
class Step:
    """Run graph op ``op`` once.

    ``io`` maps every activation (non-constant) input and output tensor of the op to the
    buffer that holds it for this step. For a patch step, ``out_region`` is the part of the
    output produced, ``in_region`` the part of the activation input(s) read, and ``pad``
    the explicit (top, bottom, left, right) zero padding that replaces SAME/VALID — non-zero
    only where the tile touches the real image border.
    """

    op: int
    io: dict[int, str]
    out_region: Region | None = None
    in_region: Region | None = None
    pad: tuple[int, int, int, int] | None = None


@dataclass
class Schedule:
    """Steps in execution order plus the buffers they use. ``kind`` is "layer" or "patch"."""

    kind: str
    steps: list[Step]
    buffers: dict[str, Buffer]
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "info": self.info,
                           "buffers": [asdict(b) for b in self.buffers.values()],
                           "steps": [asdict(s) for s in self.steps]})

    @classmethod
    def from_json(cls, text: str) -> Schedule:
        d = json.loads(text)

        def region(r: dict | None) -> Region | None:
            return Region(**r) if r else None

        buffers = {b["name"]: Buffer(b["name"], b["tensor"], b["nbytes"], region(b["region"]),
                                     bool(b.get("stream", False)))
                   for b in d["buffers"]}
        steps = [Step(s["op"], {int(k): v for k, v in s["io"].items()}, region(s["out_region"]),
                      region(s["in_region"]), tuple(s["pad"]) if s["pad"] else None)
                 for s in d["steps"]]
        return cls(d["kind"], steps, buffers, d["info"])


def buffer_name(tensor: int) -> str:
    """Name of the buffer that holds a whole tensor."""
    return f"t{tensor}"


def layer_schedule(graph: Graph) -> Schedule:
    """The plain schedule: every op once, in graph order, on whole tensors."""
    acts = {t.index: t for t in graph.activations()}
    buffers = {buffer_name(i): Buffer(buffer_name(i), i, t.nbytes) for i, t in acts.items()}
    steps = [Step(op.index, {t: buffer_name(t) for t in (*op.inputs, *op.outputs) if t in acts})
             for op in graph.ops]
    return Schedule("layer", steps, buffers)
