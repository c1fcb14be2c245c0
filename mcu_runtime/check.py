"""`tinymcu check`: will this int8 model fit the board? The CI gate, as a Python API.

``check_model`` reads a .tflite (no TensorFlow), builds the requested schedule, plans the
arena and returns a :class:`CheckReport`: per-op MACs/live bytes/high-water, arena vs the
liveness lower bound, flash, and the verdict against an SRAM/flash budget. The arena figure
is the planner's, and the planner is proven by the emulator, which runs the model inside an
arena of exactly that size (tests check both agree). ``--target tflm`` instead predicts the
arena the TFLM interpreter needs on a 32-bit Cortex-M (tested against TFLM's own numbers).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import OverBudget, TinymcuError
from . import kernels
from .ir import Graph
from .passes import FUSED_KIND, fold_pads, fuse_expand_depthwise
from .planner import Plan, plan
from .schedule import Schedule, layer_schedule
from .tflite_reader import load_tflite

SCHEMA_VERSION = 1
TARGETS = ("tinymcu", "tflm")
SCHEDULES = ("layer", "patch", "auto")
#: `--schedule patch` prefers schedules that recompute at most this share of extra MACs
MAX_MAC_OVERHEAD = 0.15


@dataclass(frozen=True)
class Budget:
    sram_bytes: int
    flash_bytes: int
    board: str | None = None


@dataclass
class OpUsage:
    """Memory and compute of one graph op (all its steps, for a patch stage)."""

    index: int
    kind: str
    output_shape: list[int]
    macs: int
    live_bytes: int
    high_water_bytes: int


@dataclass
class ScheduleUsage:
    """What one schedule costs: arena, lower bound, MACs, and the per-step memory curve."""

    kind: str
    arena_bytes: int
    lower_bound_bytes: int
    macs: int
    ops: list[OpUsage]
    step_live_bytes: list[int]
    step_high_water_bytes: list[int]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if self.kind == "patch" and self.info:
            return (f"split after op {self.info.get('split')}, {self.info.get('grid')}×"
                    f"{self.info.get('grid')} patches")
        return "op by op"


@dataclass
class Model:
    name: str
    path: str
    sha256: str
    file_bytes: int
    ops: int
    weights_bytes: int
    weights_sparse_bytes: int


@dataclass
class CheckReport:
    model: Model
    target: str
    budget: Budget
    flash_bytes: int
    flash_what: str
    chosen: ScheduleUsage
    schedules: dict[str, ScheduleUsage]
    fits: bool
    verdict: str
    regression: dict[str, float] | None = None
    note: str | None = None
    #: EXPAND_DEPTHWISE ops (fused 1×1 expand + depthwise pairs) in the planned graph
    fused_ops: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The versioned JSON document (``schema_version`` bumps on breaking changes)."""
        d = asdict(self)
        return {"schema_version": SCHEMA_VERSION, "tool": f"tinymcu {__version__}", **d}


def sparse_weight_bytes(graph: Graph) -> int:
    """Flash for the constants with int8 weights stored sparse: a 1-bit-per-weight mask plus
    the non-zero values — the format pruned layers take in our C runtime. Other constants
    (int32 biases, shapes) stay dense. Equals the pruner's flash budget model."""
    total = 0
    for t in graph.tensors:
        if not t.is_const:
            continue
        if t.dtype == "int8":
            total += (t.size + 7) // 8 + int(np.count_nonzero(t.data))
        else:
            total += t.nbytes
    return total


def usage(graph: Graph, p: Plan) -> ScheduleUsage:
    """Summarise a plan per step and per op (MACs scale with the tile area of patch steps)."""
    sched = p.schedule
    step_hw = []
    for i in range(len(sched.steps)):
        live = [n for n, (a, b) in p.lifetimes.items() if a <= i <= b]
        step_hw.append(max((p.offsets[n] + p.sizes[n] for n in live), default=0))
    ops: dict[int, OpUsage] = {}
    total_macs = 0
    for i, step in enumerate(sched.steps):
        op = graph.ops[step.op]
        out = graph.tensors[op.outputs[0]]
        macs = kernels.step_macs(graph, step)
        total_macs += macs
        row = ops.setdefault(step.op, OpUsage(op.index, op.kind, list(out.shape), 0, 0, 0))
        row.macs += macs
        row.live_bytes = max(row.live_bytes, p.live_bytes[i])
        row.high_water_bytes = max(row.high_water_bytes, step_hw[i])
    return ScheduleUsage(sched.kind, p.arena_bytes, p.lower_bound, total_macs,
                         sorted(ops.values(), key=lambda o: o.index), list(p.live_bytes),
                         step_hw, dict(sched.info))


def candidate_schedules(graph: Graph, kind: str, sram_bytes: int
                        ) -> tuple[dict[str, Schedule], str | None]:
    """The schedules ``--schedule kind`` compares, and a note when no patch schedule applies.

    Always op by op; plus for "patch" the lowest-peak patch schedule within
    ``MAX_MAC_OVERHEAD`` extra MACs (the lowest-peak one at any cost if none is that cheap),
    for "auto" the cheapest patch schedule that fits when op by op does not.
    """
    if kind not in SCHEDULES:
        raise TinymcuError(f"unknown schedule {kind!r}; choose from {', '.join(SCHEDULES)}")
    out = {"layer": layer_schedule(graph)}
    if kind == "layer":
        return out, None
    from . import patch

    try:
        if kind == "patch":
            try:
                found = patch.search(graph, objective="peak", max_overhead=MAX_MAC_OVERHEAD)
            except OverBudget:
                found = patch.search(graph, objective="peak")
            out["patch"] = found.schedule
        else:
            auto = patch.auto_schedule(graph, sram_bytes)
            if auto.kind == "patch":
                out["patch"] = auto
    except TinymcuError as e:
        return out, str(e)
    return out, None


def pick(kind: str, costs: dict[str, tuple[int, int]], sram_bytes: int) -> str:
    """Which schedule runs: (arena, MACs) per candidate; auto takes the fewest MACs that fit."""
    if kind != "auto":
        return kind if kind in costs else "layer"
    fitting = [n for n, (arena, _) in costs.items() if arena <= sram_bytes]
    if fitting:
        return min(fitting, key=lambda n: costs[n][1])
    return min(costs, key=lambda n: costs[n][0])


def check_model(path: str | Path, budget: Budget, target: str = "tinymcu",
                schedule: str = "layer", strategy: str = "best",
                fuse: bool = False) -> CheckReport:
    """Plan ``path`` under ``budget`` and decide whether it fits. Pure: writes nothing.

    ``fuse``: plan with the expand + depthwise pairs fused (see :func:`load_graph`)."""
    if target not in TARGETS:
        raise TinymcuError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if target == "tflm" and schedule != "layer":
        raise TinymcuError("TFLM runs op by op: --target tflm takes only --schedule layer")
    path = Path(path)
    data, graph = load_graph(path, target, fuse)
    model = Model(path.stem, str(path), hashlib.sha256(data).hexdigest(), len(data),
                  len(graph.ops), graph.weight_bytes(), sparse_weight_bytes(graph))

    candidates, note = candidate_schedules(graph, schedule, budget.sram_bytes)
    schedules = {name: usage(graph, plan(graph, sched, strategy=strategy, target=target))
                 for name, sched in candidates.items()}
    chosen = schedules[pick(schedule, {n: (s.arena_bytes, s.macs) for n, s in schedules.items()},
                            budget.sram_bytes)]

    if target == "tflm":
        flash, flash_what = len(data), "the .tflite model array"
    else:
        flash, flash_what = graph.weight_bytes(), "weights and biases"
    over = []
    if chosen.arena_bytes > budget.sram_bytes:
        over.append(f"SRAM {chosen.arena_bytes:,} B > {budget.sram_bytes:,} B")
    if flash > budget.flash_bytes:
        over.append(f"flash {flash:,} B > {budget.flash_bytes:,} B")
    verdict = "fits" if not over else "over budget: " + "; ".join(over)
    return CheckReport(model, target, budget, flash, flash_what, chosen, schedules,
                       not over, verdict, note=note,
                       fused_ops=sum(op.kind == FUSED_KIND for op in graph.ops))


def apply_baseline(report: CheckReport, baseline: dict[str, Any],
                   max_regression: float) -> CheckReport:
    """Compare with an earlier report's JSON; growth past ``max_regression`` fails the gate."""
    try:
        if baseline["schema_version"] != SCHEMA_VERSION:
            raise TinymcuError(f"baseline has schema_version {baseline['schema_version']}, "
                               f"expected {SCHEMA_VERSION}")
        base_arena = int(baseline["chosen"]["arena_bytes"])
        base_flash = int(baseline["flash_bytes"])
    except (KeyError, TypeError, ValueError):
        raise TinymcuError("baseline is not a tinymcu check JSON report") from None
    arena_change = report.chosen.arena_bytes / base_arena - 1 if base_arena else 0.0
    flash_change = report.flash_bytes / base_flash - 1 if base_flash else 0.0
    report.regression = {"baseline_arena_bytes": base_arena, "baseline_flash_bytes": base_flash,
                         "arena_change": arena_change, "flash_change": flash_change,
                         "max_regression": max_regression}
    worst = max(arena_change, flash_change)
    if worst > max_regression:
        msg = f"regression {100 * worst:+.1f}% over the {100 * max_regression:.1f}% limit"
        report.fits = False
        report.verdict = msg if report.verdict == "fits" else f"{report.verdict}; {msg}"
    return report


def load_graph(path: Path, target: str = "tinymcu", fuse: bool = False
               ) -> tuple[bytes, Graph]:
    """Read and parse a .tflite; every error names the file (one line, exit 2).

    For our own runtime (``target="tinymcu"``) PAD ops are folded into the convs that read
    them (``passes.fold_pads``): its kernels pad inside the window loop, so the padded copy
    never exists. TFLM executes the PAD op, so ``"tflm"`` keeps the graph as written.
    ``fuse`` (tinymcu only) also runs each stride-2 inverted bottleneck's 1×1 expand and
    depthwise channel by channel (``passes.fuse_expand_depthwise``). It is opt-in so that
    the default per-layer figure stays the op-by-op one TFLM and MCUNetV2 compare against.
    """
    if target not in TARGETS:
        raise TinymcuError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if fuse and target != "tinymcu":
        raise TinymcuError("TFLM runs the ops as written: --fuse needs --target tinymcu")
    data = read_model(path)
    try:
        graph = load_tflite(data)
    except TinymcuError as e:
        raise TinymcuError(f"{path}: {e}") from None
    if target != "tinymcu":
        return data, graph
    graph = fold_pads(graph)
    return data, fuse_expand_depthwise(graph) if fuse else graph


def read_model(path: Path) -> bytes:
    if not path.exists():
        raise TinymcuError(f"{path}: no such file")
    if path.is_dir():
        raise TinymcuError(f"{path}: is a directory, expected a .tflite file")
    return path.read_bytes()
