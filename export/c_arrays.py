"""The .tflite as C source for TFLM: a 16-byte-aligned byte array plus a header that says
what firmware needs to know without parsing the model — shapes, quantization, the arena size
TFLM needs and the ops to register. Both files come from the Jinja2 templates beside this module.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from tinymcu import __version__
from tinymcu.mcu_runtime.ir import Graph
from tinymcu.mcu_runtime.ops.base import quant_of

#: TFLite builtin → MicroMutableOpResolver method
RESOLVER_METHODS = {
    "ADD": "AddAdd", "AVERAGE_POOL_2D": "AddAveragePool2D", "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize", "FULLY_CONNECTED": "AddFullyConnected",
    "HARD_SWISH": "AddHardSwish", "LEAKY_RELU": "AddLeakyRelu", "LOGISTIC": "AddLogistic",
    "MAXIMUM": "AddMaximum", "MAX_POOL_2D": "AddMaxPool2D", "MEAN": "AddMean",
    "MINIMUM": "AddMinimum", "MUL": "AddMul", "PAD": "AddPad", "PADV2": "AddPadV2",
    "QUANTIZE": "AddQuantize", "RELU": "AddRelu", "RELU6": "AddRelu6", "RESHAPE": "AddReshape",
    "SOFTMAX": "AddSoftmax", "SQUEEZE": "AddSqueeze", "SUB": "AddSub", "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose", "STRIDED_SLICE": "AddStridedSlice", "SHAPE": "AddShape",
    "PACK": "AddPack", "DIV": "AddDiv", "BATCH_MATMUL": "AddBatchMatMul",
}

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while alignas alignof bool""".split())

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("tinymcu.export", "templates"),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@dataclass
class OpEntry:
    builtin: str
    method: str


def c_identifier(name: str) -> str:
    """A valid, non-reserved C identifier from any model name (``"mnv2-0.35@96"`` →
    ``mnv2_0_35_96``); leading digits and keywords get a ``model_`` prefix."""
    ident = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_")
    if not ident or ident[0].isdigit() or ident in C_KEYWORDS or keyword.iskeyword(ident) \
            or ident.startswith("__"):
        ident = f"model_{ident}".rstrip("_")
    return ident


def tflm_ops(graph: Graph) -> list[OpEntry]:
    """The ops TFLM must register, in first-use order, with their resolver methods."""
    seen: list[str] = []
    for op in graph.ops:
        if op.kind not in seen:
            seen.append(op.kind)
    return [OpEntry(k, RESOLVER_METHODS.get(k, "Add" + "".join(
        p.capitalize() for p in k.split("_")))) for k in seen]


def _fmt_float(v: float) -> str:
    return repr(float(v)) if "e" not in repr(float(v)) else f"{float(v):.9e}"


def write_c_arrays(tflite: bytes, graph: Graph, out_dir: Path, name: str, arena_bytes: int,
                   source: str) -> list[Path]:
    """Render ``model_data.h`` and ``model_data.c`` into ``out_dir``; returns their paths."""
    ident = c_identifier(name)
    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    q_in, q_out = quant_of(graph, graph.inputs[0]), quant_of(graph, graph.outputs[0])
    rows = [", ".join(f"0x{b:02x}" for b in tflite[i:i + 12]) + ","
            for i in range(0, len(tflite), 12)]
    ctx = {
        "ident": ident, "macro": ident.upper(), "guard": f"{ident.upper()}_MODEL_DATA_H",
        "header": "model_data.h", "version": __version__,
        "source": source.replace("*/", "* /"), "length": len(tflite), "rows": rows,
        "arena_bytes": arena_bytes, "ops": tflm_ops(graph),
        "input_shape": list(t_in.shape), "input_size": t_in.size,
        "input_scale": _fmt_float(q_in.scale.reshape(-1)[0]),
        "input_zero_point": int(q_in.zero_point.reshape(-1)[0]),
        "output_shape": list(t_out.shape), "output_size": t_out.size,
        "output_scale": _fmt_float(q_out.scale.reshape(-1)[0]),
        "output_zero_point": int(q_out.zero_point.reshape(-1)[0]),
    }
    paths = []
    for fname in ("model_data.h", "model_data.c"):
        path = out_dir / fname
        path.write_text(_TEMPLATES.get_template(f"{fname}.j2").render(**ctx))
        paths.append(path)
    return paths
