"""The C code generator: (Graph, Plan) → a self-contained, bit-exact C99 int8 firmware model.

``generate`` writes ``model.h``/``model.c`` from the named templates
``templates/model.{h,c}.j2`` (hls4ml style) and copies the header-only kernels
(``mcu_runtime/c/`` and every op folder's ``mcu_runtime/ops/<family>/*.h``) beside them, so
``cc -std=c99 -I OUT OUT/model.c main.c`` builds. The arena is one static array of exactly
``plan.arena_bytes``; every schedule step becomes one kernel call (each op folder's
``emit.py``, TinyEngine style) on the buffers at the planner's offsets — per-layer
steps, patch steps with their regions and explicit pads, and fused EXPAND_DEPTHWISE ops
alike. The generated C executes exactly what the emulator executes, so the tests compare
the two (and TFLM) bit for bit. With ``sparse`` the filters of pruned models are stored as
per-row non-zero lists or a bitmask plus their non-zero values, whichever
``codegen.sparse.plan_formats`` picks, never more weight flash than the bitmask format
``prune/budget.py`` plans with.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined

from tinymcu import __version__
from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.mcu_runtime import ops
from tinymcu.mcu_runtime.codegen.emitters import CUnit, c_struct, emitters, supported
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.planner import Plan
from tinymcu.mcu_runtime.schedule import Region, Step
from tinymcu.outputs import atomic_dir

__all__ = ["DEFAULT_PREFIX", "CodegenResult", "codegen_model", "file_stem", "generate",
           "runtime_headers", "supported"]

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
    #: the kernels' trade-off the plan was made for ("speed" or "memory")
    optimize: str = "speed"


def runtime_headers() -> list[Path]:
    """The header-only kernels every generated model includes: the shared ones in ``c/`` and
    each op folder's (file names are unique across folders; the registry test checks)."""
    root = resources.files("tinymcu.mcu_runtime") / "c"
    shared = [Path(str(p)) for p in root.iterdir() if p.name.endswith(".h")]
    return sorted(shared + ops.header_paths(), key=lambda p: p.name)


def _whole_buffer(plan: Plan, tensor: int, what: str) -> str:
    for name, buf in plan.schedule.buffers.items():
        if buf.tensor == tensor and buf.region is None and name in plan.offsets:
            return name
    raise TinymcuError(f"the schedule has no whole buffer for graph {what} {tensor}")


def check_supported(graph: Graph) -> None:
    """One line naming the first thing the C runtime cannot run (TinymcuError)."""
    if not graph.inputs or not graph.outputs:
        raise TinymcuError("the model has no input or no output")
    if set(graph.inputs) & set(graph.outputs):
        raise TinymcuError("a graph input that is also a graph output is not supported by the "
                           "C runtime")
    for what, t in [*(("input", t) for t in graph.inputs),
                    *(("output", t) for t in graph.outputs)]:
        dtype = graph.tensors[t].dtype
        ends = ([op.kind for op in graph.consumers(t)] if what == "input"
                else [op.kind for op in graph.ops if t in op.outputs])
        edge = "QUANTIZE" if what == "input" else "DEQUANTIZE"
        if dtype in ("int8", "uint8", "int16") or (dtype == "float32" and ends and
                                           all(k == edge for k in ends)):
            continue
        if what == "output" and ends and all(ops.get(k).mixed_types and k != "QUANTIZE"
                                             for k in ends):
            continue  # an op's own typed result (ARG_MAX's indices, CAST): raw bytes out
        if dtype in ("int16", "int32") and ends and all(k == "QUANTIZE" for k in ends):
            continue  # integer ends requantized by QUANTIZE (keyword models: int16 in, int32 out)
        if what == "input" and ends and all(ops.get(k).mixed_types and k != "DEQUANTIZE"
                                            for k in ends):
            continue  # an op's own typed operand (GATHER's token ids, CAST): raw bytes in
        raise TinymcuError(f"the model's {what} is {dtype}; the C runtime takes int8, uint8 "
                           f"or int16 ends, float32 ones converted by {edge}, or int16/int32 "
                           "ones converted by QUANTIZE")
    table = emitters()
    for op in graph.ops:
        if op.kind not in table:
            raise TinymcuError(f"op {op.index} {op.kind} is not supported by the C runtime "
                               f"(supported: {', '.join(supported())})")


def _state(graph: Graph, plan: Plan) -> list[dict[str, int]]:
    """The state tensors' arena bytes and reset byte (``tinymcu_reset`` memsets them)."""
    out = []
    for t in graph.variables():
        tensor = graph.tensors[t]
        out.append({"tensor": t, "offset": plan.offsets[_whole_buffer(plan, t, "state")],
                    "nbytes": tensor.nbytes, "value": tensor.reset_value})
    return out


def _step_note(plan: Plan, i: int) -> str:
    step = plan.schedule.steps[i]
    r = step.out_region
    return f" tile y[{r.y0},{r.y1}) x[{r.x0},{r.x1})" if r is not None else ""


#: the API prefix that keeps today's names: ``tinymcu_run()``, ``TINYMCU_ARENA_BYTES``,
#: files ``model.h``/``model.c``
DEFAULT_PREFIX = "tinymcu"
_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_BYTES = ("int8", "uint8")


def check_prefix(prefix: str) -> str:
    """``prefix`` if it can start C identifiers and macros (one line otherwise)."""
    if not _PREFIX.match(prefix) or prefix.startswith("tm_") or prefix.lower() == "tm" \
            or prefix.endswith("_"):
        raise TinymcuError(f"--prefix {prefix!r}: a C identifier of letters, digits and '_' "
                           f"(at most 32, starting with a letter, not ending in '_'), not "
                           f"tm/tm_* (the runtime's own names)")
    return prefix


def file_stem(prefix: str) -> str:
    """File names of a model with API ``prefix``: ``model.h``/``model.c`` for the default,
    ``<prefix>.h``/``<prefix>.c`` otherwise, so several models share one include path."""
    return "model" if prefix == DEFAULT_PREFIX else prefix


def _hexfloat(value: float) -> str:
    """A float32 value as an exact C99 hexadecimal literal (no decimal rounding)."""
    return float(np.float32(value)).hex()


def _quant_fields(graph: Graph, tensor: int, quantize: bool) -> str | None:
    """The ``tm_quant_params`` of an 8-bit model end (None for float or other ends), the
    numbers QUANTIZE/DEQUANTIZE would take for that tensor."""
    t = graph.tensors[tensor]
    if t.dtype not in _BYTES or t.quant is None:
        return None
    scale, zp = float(t.quant.scale.ravel()[0]), int(t.quant.zero_point.ravel()[0])
    lo, hi = (-128, 127) if t.dtype == "int8" else (0, 255)
    return c_struct(scale=repr(scale), zero_point=zp, qmin=lo if quantize else 0,
                    qmax=hi if quantize else 0, is_unsigned=int(t.dtype == "uint8"))


def _stream_reads(unit: CUnit, step: Step) -> list[dict[str, int]]:
    """The input rows a step asks the read function for: one entry per streamed buffer."""
    reads = []
    for t, name in step.io.items():
        buf = unit.plan.schedule.buffers[name]
        if not buf.stream:
            continue
        shape = unit.graph.tensors[t].shape
        r = buf.region or Region(0, shape[1], 0, shape[2])
        reads.append({"offset": unit.offset(name, buf.nbytes), "y0": r.y0, "y1": r.y1,
                      "x0": r.x0, "x1": r.x1, "row_bytes": r.w * shape[3]})
    return reads


def check_streamable(graph: Graph, plan: Plan) -> None:
    """A streamed plan's input must be a batch-1 NHWC 8-bit map the read function fills row by
    row, and no step may read it except through a streamed tile buffer."""
    if len(graph.inputs) != 1:
        raise TinymcuError(f"streamed input needs a model with one input; this one has "
                           f"{len(graph.inputs)}")
    t = graph.tensors[graph.inputs[0]]
    if len(t.shape) != 4 or t.shape[0] != 1 or t.dtype not in _BYTES:
        raise TinymcuError(f"streamed input needs a batch-1 NHWC int8/uint8 image; the input is "
                           f"{t.dtype} {list(t.shape)}")
    for i, step in enumerate(plan.schedule.steps):
        name = step.io.get(t.index)
        if name is not None and not plan.schedule.buffers[name].stream:
            raise TinymcuError(f"step {i} reads the input from a resident buffer: plan the "
                               f"schedule from patch.streamed_schedule to stream it")


def render(graph: Graph, plan: Plan, prefix: str = DEFAULT_PREFIX, source: str | None = None,
           sparse: bool = False) -> tuple[str, str, int]:
    """(header text, source text, const bytes) of the generated model; ``source`` names
    the model in the files' comments (default: the graph's name), ``sparse`` stores the
    filters sparse (:func:`generate`). Every exported symbol and macro starts with
    ``prefix`` (``prefix_run``, ``PREFIX_ARENA_BYTES``); everything else is static. A plan
    of a streamed schedule (``patch.streamed_schedule``) gets ``prefix_run_streamed()``."""
    check_supported(graph)
    check_prefix(prefix)
    if plan.arena_bytes <= 0:
        raise TinymcuError("the plan has an empty arena")
    stream = any(b.stream for b in plan.schedule.buffers.values())
    if stream:
        check_streamable(graph, plan)
    unit = CUnit(graph, plan, sparse)
    table = emitters()
    steps = []
    for i, step in enumerate(plan.schedule.steps):
        op = graph.ops[step.op]
        steps.append({"index": i, "op": op.index, "kind": op.kind, "note": _step_note(plan, i),
                      "reads": _stream_reads(unit, step) if stream else [],
                      "lines": table[op.kind](unit, op, step, i)})
    inputs = [graph.tensors[t] for t in graph.inputs]
    outputs = [graph.tensors[t] for t in graph.outputs]
    inp, out = inputs[0], outputs[0]
    ctx = {
        "version": __version__, "model": source or graph.name, "prefix": prefix,
        "macro": prefix.upper(), "stem": file_stem(prefix),
        "guard": "".join(ch if ch.isalnum() else "_" for ch in file_stem(prefix).upper())
                 + ("" if prefix == DEFAULT_PREFIX else "_MODEL"),
        "kind": plan.schedule.kind, "arena_bytes": plan.arena_bytes,
        "lower_bound": plan.lower_bound, "inputs": inputs, "outputs": outputs,
        "input": inp, "output": out, "stream": stream,
        "input_offsets": [] if stream else [plan.offsets[_whole_buffer(plan, t.index, "input")]
                                            for t in inputs],
        "output_offsets": [plan.offsets[_whole_buffer(plan, t.index, "output")]
                           for t in outputs],
        "input_width": inp.shape[2] if stream else 0,
        "input_channels": inp.shape[3] if stream else 0,
        "zero_point": lambda t: int(t.quant.zero_point.ravel()[0]) if t.quant else 0,
        "scale": lambda t: float(t.quant.scale.ravel()[0]) if t.quant else 1.0,
        "hexfloat": _hexfloat,
        # the float helpers convert one tensor: models with one input / one output
        "quant_in": _quant_fields(graph, inp.index, True) if len(inputs) == 1 else None,
        "quant_out": _quant_fields(graph, out.index, False) if len(outputs) == 1 else None,
        "arrays": unit.arrays, "params": unit.params, "steps": steps, "boxes": list(unit.boxes),
        "const_bytes": unit.const_bytes, "sparse": sparse, "state": _state(graph, plan),
        "sparse_forms": unit.sparse_forms if sparse else None,
        "sparse_paths": unit.sparse_paths,
    }
    return (_ENV.get_template("model.h.j2").render(**ctx),
            _ENV.get_template("model.c.j2").render(**ctx), unit.const_bytes)


def generate(graph: Graph, plan: Plan, out_dir: Path, prefix: str = DEFAULT_PREFIX,
             sparse: bool = False) -> list[Path]:
    """Write ``<stem>.h``, ``<stem>.c`` (:func:`file_stem`) and the runtime headers into
    ``out_dir``.

    ``sparse``: pruned filters as per-row non-zero lists or a 1-bit-per-weight mask plus
    the non-zero int8 values (``codegen.sparse.plan_formats``; within the flash
    ``prune/budget.py`` plans with); dense TFLite layouts otherwise."""
    header, source, _ = render(graph, plan, prefix, sparse=sparse)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = file_stem(prefix)
    files = [out_dir / f"{stem}.h", out_dir / f"{stem}.c"]
    files[0].write_text(header)
    files[1].write_text(source)
    for h in runtime_headers():
        files.append(Path(shutil.copyfile(h, out_dir / h.name)))
    return files


def codegen_model(path: Path, out_dir: Path, schedule: str = "layer", fuse: bool = False,
                  sram_bytes: int = 256 * 1024, enforce_budget: bool = False,
                  sparse: bool = False, prefix: str = DEFAULT_PREFIX,
                  stream: bool = False, optimize: str | None = None) -> CodegenResult:
    """Read a .tflite, pick and plan its schedule as ``tinymcu emulate`` does, and write the
    C model into ``out_dir`` atomically (a failure leaves ``out_dir`` as it was).

    ``optimize``: "speed" plans the fast kernels' scratch (im2col columns, padded depthwise
    planes), "memory" the direct loops with the smallest scratch; None (the default) takes
    speed when its arena fits ``sram_bytes`` and memory otherwise.

    ``enforce_budget`` raises OverBudget, writing nothing, when the planned arena exceeds
    ``sram_bytes`` (the CLI's gate); otherwise the budget only steers ``schedule="auto"``.
    ``sparse`` as in :func:`generate`; ``prefix`` names the API and the files (:func:`render`,
    :func:`file_stem`); ``stream`` generates ``prefix_run_streamed()`` on a streamed plan
    (``pipeline.streamed_plan``): the input is read tile by tile, never resident."""
    from tinymcu.mcu_runtime.pipeline import load_graph, plan_and_pick

    check_prefix(prefix)
    modes = [optimize] if optimize is not None else ["speed", "memory"]
    for mode in modes:  # the fastest that fits
        _, graph = load_graph(Path(path), target="tinymcu", fuse=fuse, optimize=mode,
                              sparse=sparse)
        check_supported(graph)
        chosen = plan_and_pick(graph, schedule, sram_bytes, stream)
        if chosen.arena_bytes <= sram_bytes:
            break
    if enforce_budget and chosen.arena_bytes > sram_bytes:
        raise OverBudget(f"{chosen.schedule.kind} schedule needs a {chosen.arena_bytes:,} B "
                         f"arena > SRAM budget {sram_bytes:,} B; nothing written")
    header, source, const_bytes = render(graph, chosen, prefix, Path(path).name, sparse)
    stem = file_stem(prefix)
    with atomic_dir(Path(out_dir)) as tmp:
        (tmp / f"{stem}.h").write_text(header)
        (tmp / f"{stem}.c").write_text(source)
        for h in runtime_headers():
            shutil.copyfile(h, tmp / h.name)
        names = sorted(p.name for p in tmp.iterdir())
    files = [Path(out_dir) / n for n in names]
    return CodegenResult(files, chosen.arena_bytes, chosen.schedule.kind,
                         len(chosen.schedule.steps), graph, chosen, const_bytes, mode)
