"""PyTorch → ONNX (static shapes, batch 1) and the checks that make an ONNX file trustworthy.

ONNX is the hand-off format: the converter reads nothing else, so a torch model and a user's
``.onnx`` take exactly the same path. The exporter is the TorchScript-based one
(``dynamo=False``, opset 17): the dynamo exporter needs onnxscript and emits more shape
plumbing. onnxruntime is the float reference everything later is compared against, so its
agreement with torch is measured here and a mismatch stops the export.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinymcu.errors import TinymcuError

OPSET = 17
#: torch vs onnxruntime tolerance (absolute, on outputs scaled to at most 1 in magnitude)
PARITY_TOL = 1e-3


@dataclass
class OnnxCheck:
    """A loaded, checked ONNX model with one static input."""

    model: Any  # onnx.ModelProto
    input_name: str
    input_shape: tuple[int, ...]
    torch_max_abs_diff: float | None = None


def probe_module(module: Any, sample: np.ndarray, data_name: str) -> None:
    """Run the torch model once on a calibration sample before exporting it.

    A sample of the wrong shape otherwise surfaces as "torch.onnx.export failed: The following
    operation failed in the TorchScript interpreter"; here the error says both shapes: the
    samples' and what the model's first layer takes.
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(sample[None], dtype=np.float32))
    try:
        with torch.no_grad():
            module(x)
    except Exception as e:  # shape errors come as RuntimeError, TorchScript errors vary
        got = "×".join(map(str, sample.shape))
        torch_msg = _torch_error_line(e)
        raise TinymcuError(f"calibration samples are {got} ({data_name}), but the model "
                           f"{_first_layer_takes(module)}; torch: {torch_msg}") from None


def _torch_error_line(e: Exception) -> str:
    """The informative line of a torch error (TorchScript wraps it after a traceback)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln or "expected" in ln or "shape" in ln:
            return ln[:240]
    return (lines[-1] if lines else type(e).__name__)[:240]


def _first_layer_takes(module: Any) -> str:
    """What the first conv/linear layer (in definition order) accepts, from its weight."""
    for name, p in module.named_parameters():
        if name.endswith("weight") and p.dim() in (2, 3, 4):
            layer = name.rsplit(".", 1)[0] or name
            groups = 1
            try:  # nn.Module only: ScriptModules refuse get_submodule
                groups = int(module.get_submodule(layer).groups)
            except (AttributeError, TypeError, ValueError, RuntimeError):
                pass
            ch = int(p.shape[1]) * groups
            form = {2: f"{ch} features", 3: f"{ch}×L", 4: f"{ch}×H×W"}[p.dim()]
            return f"takes {form} (first layer {layer}: weight {tuple(p.shape)})"
    return "rejects them"


def torch_to_onnx(module: Any, input_shape: tuple[int, ...], path: Path,
                  samples: np.ndarray) -> OnnxCheck:
    """Export ``module`` at ``input_shape`` to ``path``; fail if onnxruntime disagrees."""
    import torch

    dummy = torch.from_numpy(np.ascontiguousarray(samples[:1], dtype=np.float32))
    try:
        with torch.no_grad():
            torch.onnx.export(module, (dummy,), str(path), dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              do_constant_folding=True)
    except Exception as e:  # the TorchScript exporter raises many error types
        raise TinymcuError(f"torch.onnx.export failed: {str(e).splitlines()[0]}") from None
    check = check_onnx(path)
    with torch.no_grad():
        ref = np.concatenate([module(torch.from_numpy(s[None])).numpy() for s in samples])
    got = run_onnx(check, samples)
    diff = float(np.max(np.abs(got - ref)))
    scale = max(1.0, float(np.max(np.abs(ref))))
    if diff / scale > PARITY_TOL:
        raise TinymcuError(f"onnxruntime output differs from torch by {diff:.3g} "
                           f"(tolerance {PARITY_TOL:g} relative to max |output| {scale:.3g})")
    check.torch_max_abs_diff = diff
    return check


def check_onnx(path: Path, input_shape: tuple[int, ...] | None = None) -> OnnxCheck:
    """Load, run onnx.checker, and require one static, batch-1 input.

    ``input_shape`` pins dynamic dimensions (the only way a dynamic-shape ONNX is accepted);
    fixed dimensions it contradicts are an error.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=False)
    except (DecodeError, onnx.checker.ValidationError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TinymcuError(f"{path}: not a valid ONNX model ({first})") from None
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise TinymcuError(f"{path}: {len(inputs)} graph inputs; tinymcu exports single-input "
                           "models")
    if len(model.graph.output) != 1:
        raise TinymcuError(f"{path}: {len(model.graph.output)} graph outputs; tinymcu exports "
                           "single-output models")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    shape: list[int | str] = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                              else (d.dim_param or "?") for d in dims]
    if input_shape is not None:
        if len(input_shape) != len(shape) or any(
                isinstance(s, int) and s != p for s, p in zip(shape, input_shape)):
            raise TinymcuError(f"{path}: --input-shape {input_shape} contradicts the model input "
                               f"{tuple(shape)}")
        shape = list(input_shape)
    dynamic = [str(s) for s in shape if not isinstance(s, int)]
    if dynamic:
        raise TinymcuError(f"{path}: input {inp.name!r} has dynamic dimensions "
                           f"({', '.join(dynamic)}) in shape {tuple(shape)}; export with static "
                           "shapes or pass --input-shape")
    if shape[0] != 1:
        raise TinymcuError(f"{path}: input batch is {shape[0]}; MCU export needs batch 1")
    for d, s in zip(dims, shape):
        d.ClearField("dim_param")
        d.dim_value = int(s)
    for out in model.graph.output:  # outputs follow from the input; let inference redo them
        for d in out.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.ClearField("dim_param")
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:  # InferenceError and friends
        raise TinymcuError(f"{path}: ONNX shape inference failed: "
                           f"{str(e).strip().splitlines()[0]}") from None
    _explicit_same_pads(model)
    return OnnxCheck(model, inp.name, tuple(int(s) for s in shape))


def _explicit_same_pads(model: Any) -> None:
    """Rewrite ``auto_pad=SAME_*`` convolutions and pools as explicit ``pads``.

    PyTorch exports ``padding='same'`` as SAME_UPPER, and onnxruntime refuses SAME with
    dilation ("Dilation not supported for AutoPadType::SAME_UPPER") — the float reference
    would fail on a valid model. Explicit pads compute the same windows everywhere; the MCU
    builder maps them back to TFLite SAME where they coincide.
    """
    from onnx import helper

    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in [*model.graph.input, *model.graph.value_info]}
    for node in model.graph.node:
        if node.op_type not in {"Conv", "MaxPool", "AveragePool"}:
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        in_shape = shapes.get(node.input[0])
        if auto not in {"SAME_UPPER", "SAME_LOWER"} or not in_shape or 0 in in_shape:
            continue
        spatial = in_shape[2:]
        if node.op_type == "Conv":
            init = {i.name: i for i in model.graph.initializer}
            if node.input[1] not in init:
                continue
            k = list(init[node.input[1]].dims[2:])
        else:
            k = list(a["kernel_shape"])
        n = len(spatial)
        s = list(a.get("strides", [1] * n))
        d = list(a.get("dilations", [1] * n))
        begin, end = [], []
        for i in range(n):
            out = -(-spatial[i] // s[i])
            total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - spatial[i], 0)
            small, big = total // 2, total - total // 2
            b_, e_ = (small, big) if auto == "SAME_UPPER" else (big, small)
            begin.append(b_)
            end.append(e_)
        keep = [x for x in node.attribute if x.name not in {"auto_pad", "pads"}]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(helper.make_attribute("pads", begin + end))


def run_onnx(check: OnnxCheck, samples: np.ndarray) -> np.ndarray:
    """Run onnxruntime sample by sample (the model has batch 1); outputs stacked on axis 0."""
    import onnxruntime as ort

    buf = io.BytesIO()
    buf.write(check.model.SerializeToString())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise TinymcuError(f"onnxruntime cannot load the model: "
                           f"{str(e).strip().splitlines()[0]}") from None
    outs = [sess.run(None, {check.input_name: s[None].astype(np.float32)})[0] for s in samples]
    return np.concatenate(outs)
