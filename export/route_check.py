"""Will our runtime take what a route produces? Asked before converting and checked after.

Before: every ONNX node is mapped to the TFLite builtins the MCU builder lowers it to, and each
of those must be an op our runtime runs — so a model with three unsupported ops fails in
seconds with all three named, not after a full conversion with an op index. After: the
converted ``.tflite`` goes through the same reader and planner ``tinymcu check`` uses; a model
our runtime would reject is refused inside export, naming the op.

The runtime's op set is asked at run time (never copied here), so every op the runtime gains
widens what export accepts without a change to this file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinymcu.errors import TinymcuError

#: budget for the post-conversion plan: only "can it be planned at all" is asked here
_UNLIMITED = 1 << 40


def runtime_ops() -> frozenset[str]:
    """TFLite builtins our reader accepts and our kernels execute (both must agree)."""
    from tinymcu.mcu_runtime import ops, tflite_reader

    return frozenset(ops.supported()) & tflite_reader.SUPPORTED_OPS


def _clip_lowering(node: Any, const_values: dict[str, Any]) -> tuple[str, ...]:
    """Clip(0, 6) → RELU6, Clip(0, ∞) → RELU, any other bounds → MINIMUM + MAXIMUM."""
    import math

    from onnx import helper

    a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    bounds = []
    for i, key, default in ((1, "min", -math.inf), (2, "max", math.inf)):
        name = node.input[i] if i < len(node.input) else ""
        bounds.append(float(const_values[name]) if name in const_values
                      else float(a.get(key, default)))
    if bounds == [0.0, 6.0]:
        return ("RELU6",)
    if bounds[0] == 0.0 and math.isinf(bounds[1]):
        return ("RELU",)
    return ("MINIMUM", "MAXIMUM")


def mcu_lowering(node: Any, const_values: dict[str, Any],
                 runtime: frozenset[str] | None = None) -> tuple[str, ...]:
    """The TFLite ops the MCU builder emits for one ONNX node (empty: folded away).

    Mirrors ``onnx_to_tf``'s choices: x / c becomes MUL, HardSigmoid is ADD(+RELU6) and MUL;
    Tanh, LeakyReLU and PReLU use their own op when ``runtime`` has it, else basic ops
    (2σ(2x) − 1, α·x + (1 − α)·relu(x)). An op the builder has no handler for maps to
    ``?OpType``.
    """
    op = node.op_type
    consts = const_values
    acts = [n for n in node.input if n and n not in consts]
    table: dict[str, tuple[str, ...]] = {
        "Conv": ("CONV_2D",), "Gemm": ("FULLY_CONNECTED",), "Add": ("ADD",), "Sub": ("SUB",),
        "Mul": ("MUL",), "Relu": ("RELU",), "Sigmoid": ("LOGISTIC",), "Tanh": ("TANH",),
        "HardSwish": ("HARD_SWISH",), "HardSigmoid": ("ADD", "MUL"),
        "LeakyRelu": ("LEAKY_RELU",), "PRelu": ("PRELU",), "Softmax": ("SOFTMAX",),
        "AveragePool": ("AVERAGE_POOL_2D",), "MaxPool": ("MAX_POOL_2D",),
        "GlobalAveragePool": ("MEAN",), "ReduceMean": ("MEAN",), "Concat": ("CONCATENATION",),
        "Pad": (), "Flatten": (), "Reshape": (), "Identity": (), "Dropout": (),
        "BatchNormalization": (), "ConvTranspose": ("TRANSPOSE_CONV",),
        "Resize": ("RESIZE_BILINEAR",), "Slice": ("SLICE",),
    }
    if op == "Div":
        return ("MUL",) if len(acts) == 1 and node.input[1] in consts else ("DIV",)
    if op == "MatMul":
        return ("FULLY_CONNECTED",) if len(acts) == 1 else ("BATCH_MATMUL",)
    if op == "Clip":
        return _clip_lowering(node, const_values)
    fallbacks = {"Tanh": ("MUL", "LOGISTIC", "ADD"), "LeakyRelu": ("MUL", "RELU", "ADD"),
                 "PRelu": ("MUL", "RELU", "ADD")}
    if op in fallbacks and runtime is not None and table[op][0] not in runtime:
        return fallbacks[op]  # the builder's lowering onto basic ops
    return table.get(op, (f"?{op}",))


def mcu_offenders(model: Any, skip: set[str], consts: dict[str, Any],
                  handled: frozenset[str],
                  shaped: Callable[[Any], tuple[str, ...] | None] | None = None) -> list[str]:
    """Every node of ``model`` the MCU route cannot take, one entry per distinct reason.

    ``shaped(node)`` gives the lowering of ops whose TFLite form depends on tensor shapes
    (Resize, Slice, ConvTranspose: the builder knows the shapes, this table does not);
    ``None`` falls back to :func:`mcu_lowering`.
    """
    runtime = runtime_ops()
    problems: dict[tuple[str, str], list[str]] = {}
    for node in model.graph.node:
        if node.output[0] in skip:
            continue
        if node.op_type not in handled:
            problems.setdefault((node.op_type, "the mcu builder has no lowering for it"),
                                []).append(node.name or node.output[0])
            continue
        lowered = shaped(node) if shaped is not None else None
        if lowered is None:
            lowered = mcu_lowering(node, consts, runtime)
        missing = [k for k in lowered if k not in runtime]
        for kind in missing:
            problems.setdefault((node.op_type, f"lowers to TFLite {kind}, which our runtime "
                                 "does not run"), []).append(node.name or node.output[0])
    return [f"ONNX op {op} ({_names(nodes)}): {why}" for (op, why), nodes in problems.items()]


def _names(nodes: list[str]) -> str:
    shown = ", ".join(repr(n) for n in nodes[:3])
    more = f" +{len(nodes) - 3} more" if len(nodes) > 3 else ""
    return ("node " if len(nodes) == 1 else "nodes ") + shown + more


def post_check(path: Path, route: str) -> Any:
    """Read and plan the converted model as ``tinymcu check`` does; refuse what fails.

    Returns the graph (our reader's, before PAD folding) for the later stages.
    """
    from tinymcu.mcu_runtime.check import Budget, check_model
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    try:
        graph = load_tflite(path)
        check_model(path, Budget(_UNLIMITED, _UNLIMITED))
    except TinymcuError as e:
        msg = re.sub(rf"^{re.escape(str(path))}: ", "", str(e))
        raise TinymcuError(f"the {route} route produced a .tflite our runtime rejects: "
                           f"{msg}") from None
    return graph
