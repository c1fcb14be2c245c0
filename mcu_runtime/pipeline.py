"""The stages every entry point shares: load a graph → candidate schedules → plan → pick.

``tinymcu check``, ``emulate`` (``execute.py``), ``codegen``, ``firmware`` and the demo all
go through these functions, so for the same model and options they run exactly the same
graph (PAD folding, optional fusion) under exactly the same schedule and plan.
"""

from __future__ import annotations

from pathlib import Path

from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.ops.conv import set_optimize, set_sparse
from tinymcu.mcu_runtime.passes import fold_pads, fuse_expand_depthwise
from tinymcu.mcu_runtime.planner import Plan, plan
from tinymcu.mcu_runtime.schedule import Schedule, layer_schedule
from tinymcu.mcu_runtime.tflite_reader import load_tflite

TARGETS = ("tinymcu", "tflm", "tflm-cmsis-nn")
SCHEDULES = ("layer", "patch", "auto")
#: `--schedule patch` prefers schedules that recompute at most this share of extra MACs
MAX_MAC_OVERHEAD = 0.15


def load_graph(path: str | Path, target: str = "tinymcu", fuse: bool = False,
               optimize: str = "speed", sparse: bool = False) -> tuple[bytes, Graph]:
    """Read and parse a .tflite; every error names the file (one line, exit 2).

    For our own runtime (``target="tinymcu"``) PAD ops are folded into the convs that read
    them (``passes.fold_pads``): its kernels pad inside the window loop, so the padded copy
    never exists. TFLM executes the PAD op, so ``"tflm"`` keeps the graph as written.
    ``fuse`` (tinymcu only) also runs each stride-2 inverted bottleneck's 1×1 expand and
    depthwise channel by channel (``passes.fuse_expand_depthwise``). It is opt-in so that
    the default per-layer figure stays the op-by-op one TFLM and MCUNetV2 compare against.
    ``optimize`` ("speed" | "memory", tinymcu only) picks the kernels' scratch trade-off
    (``ops.conv.set_optimize``): the planner, emulator and emitter read it from the ops.
    ``sparse`` (tinymcu only): the filters will be stored sparse (``--sparse``,
    ``ops.conv.set_sparse``), which changes the window convs' planned im2col scratch.
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
    graph = fuse_expand_depthwise(graph) if fuse else graph
    graph = set_sparse(graph) if sparse else graph
    return data, set_optimize(graph, optimize)


def read_model(path: str | Path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise TinymcuError(f"{path}: no such file")
    if path.is_dir():
        raise TinymcuError(f"{path}: is a directory, expected a .tflite file")
    return path.read_bytes()


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
    from tinymcu.mcu_runtime import patch

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


def streamed_plan(graph: Graph, schedule: str, sram_bytes: int | None = None) -> Plan:
    """The plan of ``--schedule schedule --stream``: the input image streamed tile by tile
    (``patch.streamed_schedule``), so the arena is the "without the input" figure made real.
    ``patch`` searches like ``--schedule patch`` but with the input left out of the count
    (the schedule that is best when the image is not resident); ``layer`` streams the whole
    input to the first op (no saving, the same API); ``auto``, as without ``--stream``,
    takes the streamed schedule with the fewest MACs whose arena fits ``sram_bytes`` (the
    smallest arena if none fits)."""
    from tinymcu.mcu_runtime import patch

    if schedule not in ("layer", "patch", "auto"):
        raise TinymcuError(f"--stream takes --schedule patch, layer or auto, not {schedule!r}")
    plans: dict[str, Plan] = {}
    if schedule in ("layer", "auto"):
        plans["layer"] = plan(graph, patch.streamed_schedule(graph, layer_schedule(graph)))
    if schedule == "patch" or (schedule == "auto" and sram_bytes is not None
                               and plans["layer"].arena_bytes > sram_bytes):
        try:
            chosen = patch.search(graph, objective="peak", count_input=False,
                                  max_overhead=MAX_MAC_OVERHEAD).schedule
        except OverBudget:
            chosen = patch.search(graph, objective="peak", count_input=False).schedule
        except TinymcuError:
            if schedule == "patch":
                raise
            chosen = None  # auto: no patch schedule applies, the streamed layer one runs
        if chosen is not None:
            plans["patch"] = plan(graph, patch.streamed_schedule(graph, chosen))
    if len(plans) == 1:
        return next(iter(plans.values()))
    costs = {n: (p.arena_bytes, patch.schedule_macs(graph, p.schedule))
             for n, p in plans.items()}
    return plans[pick("auto", costs, sram_bytes if sram_bytes is not None else 0)]


def plan_and_pick(graph: Graph, schedule: str, sram_bytes: int, stream: bool = False) -> Plan:
    """Plan every candidate of ``--schedule schedule`` and return the plan that runs (what
    emulate, codegen and firmware execute); ``stream``: :func:`streamed_plan`."""
    if stream:
        return streamed_plan(graph, schedule, sram_bytes)
    from tinymcu.mcu_runtime.patch import schedule_macs

    candidates, _ = candidate_schedules(graph, schedule, sram_bytes)
    plans = {n: plan(graph, s) for n, s in candidates.items()}
    costs = {n: (p.arena_bytes, schedule_macs(graph, p.schedule)) for n, p in plans.items()}
    return plans[pick(schedule, costs, sram_bytes)]
