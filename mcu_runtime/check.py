"""`tinymcu check`: will this int8 model fit the board? The CI gate, as a Python API.

``check_model`` reads a .tflite (no TensorFlow), builds the requested schedule, plans the
arena and returns a :class:`CheckReport`: per-op MACs/live bytes/high-water, arena vs the
liveness lower bound, flash, and the verdict against an SRAM/flash budget. The arena figure
is the planner's, and the planner is proven by the emulator, which runs the model inside an
arena of exactly that size (tests check both agree). ``--target tflm`` instead predicts the
smallest arena the TFLM interpreter allocates in on a 32-bit Cortex-M (``tflm-cmsis-nn``: with
its CMSIS-NN kernels), tested against TFLM's own numbers (``benchmarks/memory``).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinymcu import __version__
from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.passes import FUSED_KIND
from tinymcu.mcu_runtime.pipeline import TARGETS, candidate_schedules, load_graph, pick
from tinymcu.mcu_runtime.planner import Plan, plan

SCHEMA_VERSION = 1


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
            total += (t.size + 7) // 8 + int(np.count_nonzero(np.asarray(t.data)))
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
    rows: dict[int, OpUsage] = {}
    total_macs = 0
    for i, step in enumerate(sched.steps):
        op = graph.ops[step.op]
        out = graph.tensors[op.outputs[0]]
        macs = ops.step_macs(graph, step)
        total_macs += macs
        row = rows.setdefault(step.op, OpUsage(op.index, op.kind, list(out.shape), 0, 0, 0))
        row.macs += macs
        row.live_bytes = max(row.live_bytes, p.live_bytes[i])
        row.high_water_bytes = max(row.high_water_bytes, step_hw[i])
    return ScheduleUsage(sched.kind, p.arena_bytes, p.lower_bound, total_macs,
                         sorted(rows.values(), key=lambda o: o.index), list(p.live_bytes),
                         step_hw, dict(sched.info))


def check_model(path: str | Path, budget: Budget, target: str = "tinymcu",
                schedule: str = "layer", strategy: str = "best",
                fuse: bool = False, sparse: bool = False) -> CheckReport:
    """Plan ``path`` under ``budget`` and decide whether it fits. Pure: writes nothing.

    ``fuse``: plan with the expand + depthwise pairs fused (see ``pipeline.load_graph``);
    ``sparse``: plan the scratch of a ``--sparse`` build (``ops.conv.set_sparse``: the
    window convs' im2col blocks), the SRAM the sparse firmware takes."""
    if target not in TARGETS:
        raise TinymcuError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if target.startswith("tflm") and schedule != "layer":
        raise TinymcuError(f"TFLM runs op by op: --target {target} takes only --schedule layer")
    path = Path(path)
    data, graph = load_graph(path, target, fuse, sparse=sparse)
    model = Model(path.stem, str(path), hashlib.sha256(data).hexdigest(), len(data),
                  len(graph.ops), graph.weight_bytes(), sparse_weight_bytes(graph))

    candidates, note = candidate_schedules(graph, schedule, budget.sram_bytes)
    schedules = {name: usage(graph, plan(graph, sched, strategy=strategy, target=target))
                 for name, sched in candidates.items()}
    chosen = schedules[pick(schedule, {n: (s.arena_bytes, s.macs) for n, s in schedules.items()},
                            budget.sram_bytes)]

    if target.startswith("tflm"):
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
