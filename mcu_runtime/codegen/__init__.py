"""The C code generator: (Graph, Plan) → a self-contained, bit-exact C99 int8 firmware model.

``generate`` writes ``model.h``/``model.c`` from the named templates
``templates/model.{h,c}.j2`` (hls4ml style) and copies the header-only kernels of
``mcu_runtime/c/`` beside them, so ``cc -std=c99 -I OUT OUT/model.c main.c`` builds. The
arena is one static array of exactly ``plan.arena_bytes``; every schedule step becomes one
kernel call (``emitters.py``: one emitter per kernel module, TinyEngine style) on the
buffers at the planner's offsets — per-layer steps, patch steps with their regions and
explicit pads, and fused EXPAND_DEPTHWISE ops alike. The generated C executes exactly what
the emulator executes, so the tests compare the two (and TFLM) bit for bit. With ``sparse``
the filters of pruned models are stored as a bitmask plus their non-zero values, the flash
format ``prune/budget.py`` plans with.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from ... import __version__
from ...errors import OverBudget, TinymcuError
from ...outputs import atomic_dir
from ..ir import Graph
from ..planner import Plan
from .emitters import EMITTERS, CUnit, supported

__all__ = ["CodegenResult", "codegen_model", "generate", "runtime_headers", "supported"]

_ENV = Environment(loader=PackageLoader("tinymcu.mcu_runtime", "templates"),
                   undefined=StrictUndefined, keep_trailing_newline=True)


@dataclass
class CodegenResult:
    """What ``codegen_model`` wrote and the plan it implements."""

    files: list[Path]
    arena_bytes: int
    schedule: str
    steps: int
    graph: Graph
    plan: Plan
    #: bytes of const arrays (weights, biases, multipliers, tables) the C code puts in flash
    const_bytes: int = 0


def runtime_headers() -> list[Path]:
    """The header-only kernels every generated model includes."""
    root = resources.files("tinymcu.mcu_runtime") / "c"
    return sorted(Path(str(p)) for p in root.iterdir() if p.name.endswith(".h"))


def _whole_buffer(plan: Plan, tensor: int, what: str) -> str:
    for name, buf in plan.schedule.buffers.items():
        if buf.tensor == tensor and buf.region is None and name in plan.offsets:
            return name
    raise TinymcuError(f"the schedule has no whole buffer for graph {what} {tensor}")


def check_supported(graph: Graph) -> None:
    """One line naming the first thing the C runtime cannot run (TinymcuError)."""
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise TinymcuError(f"the C runtime takes models with one input and one output; this one "
                           f"has {len(graph.inputs)} input(s) and {len(graph.outputs)} output(s)")
    for what, t in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        if graph.tensors[t].dtype != "int8":
            raise TinymcuError(f"the model's {what} is {graph.tensors[t].dtype}; the C runtime "
                               f"needs int8 input and output")
    for op in graph.ops:
        if op.kind not in EMITTERS:
            raise TinymcuError(f"op {op.index} {op.kind} is not supported by the C runtime "
                               f"(supported: {', '.join(supported())})")


def _step_note(plan: Plan, i: int) -> str:
    step = plan.schedule.steps[i]
    r = step.out_region
    return f" tile y[{r.y0},{r.y1}) x[{r.x0},{r.x1})" if r is not None else ""


def render(graph: Graph, plan: Plan, prefix: str = "model", source: str | None = None,
           sparse: bool = False) -> tuple[str, str, int]:
    """(header text, source text, const bytes) of the generated model; ``source`` names
    the model in the files' comments (default: the graph's name), ``sparse`` stores the
    filters as bitmask + non-zero values."""
    check_supported(graph)
    if plan.arena_bytes <= 0:
        raise TinymcuError("the plan has an empty arena")
    unit = CUnit(graph, plan, sparse)
    steps = []
    for i, step in enumerate(plan.schedule.steps):
        op = graph.ops[step.op]
        steps.append({"index": i, "op": op.index, "kind": op.kind, "note": _step_note(plan, i),
                      "lines": EMITTERS[op.kind](unit, op, step, i)})
    inp, out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    ctx = {
        "version": __version__, "model": source or graph.name, "prefix": prefix,
        "guard": "".join(ch if ch.isalnum() else "_" for ch in prefix.upper()),
        "kind": plan.schedule.kind, "arena_bytes": plan.arena_bytes,
        "lower_bound": plan.lower_bound, "input": inp, "output": out,
        "input_offset": plan.offsets[_whole_buffer(plan, inp.index, "input")],
        "output_offset": plan.offsets[_whole_buffer(plan, out.index, "output")],
        "zero_point": lambda t: int(t.quant.zero_point.ravel()[0]) if t.quant else 0,
        "scale": lambda t: float(t.quant.scale.ravel()[0]) if t.quant else 1.0,
        "arrays": unit.arrays, "params": unit.params, "steps": steps, "boxes": list(unit.boxes),
        "const_bytes": unit.const_bytes, "sparse": sparse,
    }
    return (_ENV.get_template("model.h.j2").render(**ctx),
            _ENV.get_template("model.c.j2").render(**ctx), unit.const_bytes)


def generate(graph: Graph, plan: Plan, out_dir: Path, prefix: str = "model",
             sparse: bool = False) -> list[Path]:
    """Write ``prefix.h``, ``prefix.c`` and the runtime headers into ``out_dir``.

    ``sparse``: pruned filters as a 1-bit-per-weight mask plus the non-zero int8 values
    (the flash format ``prune/budget.py`` plans with); dense TFLite layouts otherwise."""
    header, source, _ = render(graph, plan, prefix, sparse=sparse)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{prefix}.h", out_dir / f"{prefix}.c"]
    files[0].write_text(header)
    files[1].write_text(source)
    for h in runtime_headers():
        files.append(Path(shutil.copyfile(h, out_dir / h.name)))
    return files


def codegen_model(path: Path, out_dir: Path, schedule: str = "layer", fuse: bool = False,
                  sram_bytes: int = 256 * 1024, enforce_budget: bool = False,
                  sparse: bool = False) -> CodegenResult:
    """Read a .tflite, pick and plan its schedule as ``tinymcu emulate`` does, and write the
    C model into ``out_dir`` atomically (a failure leaves ``out_dir`` as it was).

    ``enforce_budget`` raises OverBudget, writing nothing, when the planned arena exceeds
    ``sram_bytes`` (the CLI's gate); otherwise the budget only steers ``schedule="auto"``.
    ``sparse`` as in :func:`generate`."""
    from ..check import candidate_schedules, load_graph, pick
    from ..patch import schedule_macs
    from ..planner import plan as make_plan

    _, graph = load_graph(Path(path), target="tinymcu", fuse=fuse)
    check_supported(graph)
    candidates, _ = candidate_schedules(graph, schedule, sram_bytes)
    plans = {n: make_plan(graph, s) for n, s in candidates.items()}
    costs = {n: (p.arena_bytes, schedule_macs(graph, p.schedule)) for n, p in plans.items()}
    chosen = plans[pick(schedule, costs, sram_bytes)]
    if enforce_budget and chosen.arena_bytes > sram_bytes:
        raise OverBudget(f"{chosen.schedule.kind} schedule needs a {chosen.arena_bytes:,} B "
                         f"arena > SRAM budget {sram_bytes:,} B; nothing written")
    header, source, const_bytes = render(graph, chosen, "model", Path(path).name,
                                         sparse)
    with atomic_dir(Path(out_dir)) as tmp:
        (tmp / "model.h").write_text(header)
        (tmp / "model.c").write_text(source)
        for h in runtime_headers():
            shutil.copyfile(h, tmp / h.name)
        names = sorted(p.name for p in tmp.iterdir())
    files = [Path(out_dir) / n for n in names]
    return CodegenResult(files, chosen.arena_bytes, chosen.schedule.kind,
                         len(chosen.schedule.steps), graph, chosen, const_bytes)
