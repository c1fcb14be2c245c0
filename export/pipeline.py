"""The export pipeline: model + calibration data → ONNX → float TF → int8 .tflite → checks → C.

Every file is built in a temporary directory next to ``out_dir`` and moved into place only
when every step (including the TFLM checks) succeeded, so a failure leaves ``out_dir``
exactly as it was. Heavy imports (torch, TensorFlow) happen inside the steps that need them.
"""

from __future__ import annotations

import collections
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tinymcu import __version__
from tinymcu.errors import TinymcuError
from tinymcu.export import (
    c_arrays,
    litert_route,
    load,
    onnx_to_tf,
    parity,
    report,
    route_check,
    tflm_check,
    to_onnx,
)
from tinymcu.export.quiet import captured
from tinymcu.export.report import SCHEMA_VERSION
from tinymcu.outputs import atomic_dir

#: samples compared between TFLM and BUILTIN_REF (each is a full TFLM invoke in a child)
TFLM_SAMPLES = 256
#: the --converter choices
CONVERTERS = ("auto", "mcu", "litert")
#: ONNX vs traced-TF float tolerance, relative to max |output| (catches builder bugs)
TF_FLOAT_TOL = 1e-3


@dataclass
class ExportResult:
    out_dir: Path
    tflite_path: Path
    onnx_path: Path | None
    c_files: list[Path]
    report: dict[str, Any]


class _Steps:
    """Rich progress for the long steps, one log line per finished stage with its time (also
    when stderr is no terminal: CI logs show where the minutes go), wall time per stage for
    the report."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, description: str, total: int | None = 1
             ) -> Iterator[Callable[..., None]]:
        task = self.progress.add_task(description, total=total)
        start = time.perf_counter()
        yield lambda n=1: self.progress.advance(task, n)
        self.timings[key] = self.timings.get(key, 0.0) + time.perf_counter() - start
        self.progress.update(task, completed=total, visible=False)
        self.console.print(f"export: {description}: {time.perf_counter() - start:.1f} s",
                           highlight=False, markup=False)


def export_model(model_spec: str, calib: str, out_dir: str | Path, *, name: str | None = None,
                 state_dict: str | Path | None = None,
                 input_shape: tuple[int, ...] | None = None,
                 console: Console | None = None, tflm_samples: int = TFLM_SAMPLES,
                 converter: str = "auto") -> ExportResult:
    """Export ``model_spec`` (ONNX file, TorchScript file, ``tinymcu prune`` output, zoo name
    or ``pkg.mod:factory``) with calibration data ``calib`` into ``out_dir``.

    ``converter``: ``mcu`` (our ONNX → TF builder: NHWC, SAME instead of PAD, BatchNorm
    folded), ``litert`` (litert-torch with full-int8 PT2E, for the ops the builder lacks) or
    ``auto`` (mcu, else litert; the report says which ran and why).
    """
    if converter not in CONVERTERS:
        raise TinymcuError(f"--converter {converter!r}: choose from {', '.join(CONVERTERS)}")
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    noise: list[str] = []
    with atomic_dir(out_dir) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it 0700; the export is an ordinary directory
        steps = _Steps(console)
        with captured(noise):
            source = load.load_model(model_spec, state_dict)
            data = load.load_data(calib, pruner_preprocessing=source.from_prune)
            with steps.progress:
                result = _build(source, data, tmp, name or source.name, model_spec, state_dict,
                                input_shape, steps, tflm_samples, converter)
        result.report["out_dir"] = str(out_dir)
        result.report["warnings"] = noise
        report.write_reports(result.report, tmp)
    return ExportResult(out_dir, out_dir / result.tflite_path.name,
                        None if result.onnx_path is None else out_dir / result.onnx_path.name,
                        [out_dir / p.name for p in result.c_files], result.report)


@dataclass
class _Converted:
    """What a route produced: the .tflite, our reader's graph of it, and route facts."""

    route: str
    flat: bytes
    graph: Any
    layers: list[Any]
    tf_float_diff: float | None


def _build(source: load.ModelSource, data: load.Dataset, tmp: Path, name: str, model_spec: str,
           state_dict: str | Path | None, input_shape: tuple[int, ...] | None, steps: _Steps,
           tflm_samples: int, converter: str) -> ExportResult:
    t0 = time.perf_counter()
    onnx_file = tmp / "model.onnx"
    onnx_path: Path | None = onnx_file  # None when the litert route skipped ONNX
    check: to_onnx.OnnxCheck | None = None
    why = f"--converter {converter}"
    offenders: list[str] = []
    with steps.step("onnx", "model → ONNX, onnxruntime check, op check"):
        if source.module is not None:
            shape = input_shape or source.default_input_shape or (1, *data.calib.shape[1:])
            load.check_data_shape(data, shape)
            to_onnx.probe_module(source.module, data.calib[0], data.name)
            if converter != "litert":
                try:
                    check = to_onnx.torch_to_onnx(source.module, shape, onnx_file,
                                                  data.calib[:16])
                except TinymcuError as e:
                    if converter == "mcu":
                        raise
                    offenders = [str(e)]
        else:
            if source.onnx_path is None:  # a ModelSource holds exactly one of the two
                raise TinymcuError("the model source has neither a torch module nor an ONNX "
                                   "file")
            if converter == "litert":
                raise TinymcuError("--converter litert converts torch models; an .onnx file "
                                   "takes the mcu route")
            check = to_onnx.check_onnx(source.onnx_path, input_shape)
            load.check_data_shape(data, check.input_shape)
            import onnx

            onnx.save(check.model, str(onnx_file))
        if check is not None:
            load.check_data_shape(data, check.input_shape)
            offenders = onnx_to_tf.mcu_offenders(check.model, check.input_name,
                                                 check.input_shape)
        if data.eval_x.shape[1:] != data.calib.shape[1:]:
            raise TinymcuError("evaluation and calibration samples differ in shape")
        if offenders and (converter == "mcu" or source.module is None):
            raise TinymcuError(f"the mcu route cannot convert {len(offenders)} op kind(s): "
                               f"{'; '.join(offenders)}")
    conv: _Converted | None = None
    if converter in ("mcu", "auto") and not offenders:
        try:
            conv = _mcu_route(check, data, tmp, steps)
            why = "--converter mcu" if converter == "mcu" else \
                "auto: the mcu route converted every op"
        except TinymcuError as e:
            if converter == "mcu" or source.module is None:
                raise
            offenders = [str(e)]
    if conv is None:
        if converter == "auto":
            why = "auto: mcu route unavailable (" + "; ".join(offenders) + ")"
            if not litert_route.available():
                raise TinymcuError(f"the mcu route cannot convert this model "
                                   f"({'; '.join(offenders)}); the litert route needs "
                                   "pip install 'tinymcu[litert]'")
        elif not litert_route.available():
            raise TinymcuError("--converter litert needs litert-torch: "
                               "pip install 'tinymcu[litert]'")
        conv = _litert_route(source.module, data, tmp, steps)
        if check is None:
            onnx_path = None
    tflite_path = tmp / "model.tflite"
    graph = conv.graph
    in_q = graph.tensors[graph.inputs[0]].quant
    out_q = graph.tensors[graph.outputs[0]].quant

    with steps.step("reference", "int8 reference run (BUILTIN_REF) + parity"):
        if check is not None:
            float_out = onnx_to_tf.to_tf_layout(to_onnx.run_onnx(check, data.eval_x))
        else:
            float_out = onnx_to_tf.to_tf_layout(_torch_outputs(source.module, data.eval_x))
        q_inputs = parity.quantize_input(data.eval_x, in_q)
        ref_out = tflm_check.reference_outputs(tflite_path, q_inputs)
        out_parity = parity.output_parity(float_out, ref_out, out_q, data.eval_y)
        densities = parity.layer_densities(conv.layers, graph)
    with steps.step("tflm", "TFLM load, bit-exact check, smallest arena"):
        tflm = tflm_check.tflm_check(tflite_path, q_inputs[:tflm_samples], ref_out)
    c_files = c_arrays.write_c_arrays(conv.flat, graph, tmp, name, tflm.min_arena_bytes,
                                      source=model_spec)
    steps.timings["total"] = time.perf_counter() - t0

    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    op_counts = dict(collections.Counter(op.kind for op in graph.ops))
    files = {"tflite": "model.tflite", "onnx": "model.onnx", "c_header": "model_data.h",
             "c_source": "model_data.c", "report_json": "export_report.json",
             "report_md": "export_report.md"}
    if onnx_path is None:
        del files["onnx"]
    rep = {
        "schema_version": SCHEMA_VERSION, "tool": "tinymcu", "version": __version__,
        "name": name, "c_identifier": c_arrays.c_identifier(name),
        "source": {"model": model_spec, "kind": "torch" if source.module is not None else "onnx",
                   "state_dict": None if state_dict is None else str(state_dict)},
        "route": {"requested": converter, "used": conv.route, "why": why},
        "layout": "NHWC",
        "input": {"shape_nchw": [1, *data.calib.shape[1:]], "shape": list(t_in.shape),
                  "dtype": t_in.dtype, "scale": float(in_q.scale.reshape(-1)[0]),
                  "zero_point": int(in_q.zero_point.reshape(-1)[0])},
        "output": {"shape": list(t_out.shape), "dtype": t_out.dtype,
                   "scale": float(out_q.scale.reshape(-1)[0]),
                   "zero_point": int(out_q.zero_point.reshape(-1)[0])},
        "tflite_bytes": len(conv.flat), "weight_bytes": graph.weight_bytes(),
        "ops": [e.builtin for e in c_arrays.tflm_ops(graph)],
        "op_counts": op_counts,
        "explicit_pads": op_counts.get("PAD", 0) + op_counts.get("PADV2", 0),
        "onnx": {"opset": to_onnx.OPSET,
                 "torch_max_abs_diff": None if check is None else check.torch_max_abs_diff,
                 "tf_float_max_abs_diff": conv.tf_float_diff},
        "calibration": {"data": data.name, "samples": len(data.calib),
                        "eval_samples": len(data.eval_x)},
        "parity": out_parity.to_dict(),
        "layers": [d.to_dict() for d in densities],
        "tflm": tflm.to_dict(),
        "files": files,
        "timings_s": {k: round(v, 3) for k, v in steps.timings.items()},
    }
    return ExportResult(tmp, tflite_path, onnx_path, c_files, rep)


def _mcu_route(check: to_onnx.OnnxCheck | None, data: load.Dataset, tmp: Path,
               steps: _Steps) -> _Converted:
    """Our builder + TFLiteConverter full int8, then our runtime's reader and planner."""
    from tinymcu.export import quantize

    assert check is not None
    with steps.step("tf_build", "mcu: ONNX → TensorFlow graph"):
        tfm = onnx_to_tf.build_tf(check.model, check.input_name, check.input_shape)
        probe = data.calib[:8]
        ref = to_onnx.run_onnx(check, probe)
        tf_diff = float(np.max(np.abs(tfm.run(probe) - onnx_to_tf.to_tf_layout(ref))))
        if tf_diff / max(1.0, float(np.max(np.abs(ref)))) > TF_FLOAT_TOL:
            raise TinymcuError(f"the TensorFlow graph differs from ONNX by {tf_diff:.3g}; "
                               "this is a tinymcu converter bug — please report the model")
    with steps.step("quantize", "mcu: int8 calibration + conversion",
                    total=len(data.calib)) as adv:
        flat = quantize.quantize_int8(tfm, data.calib, on_sample=lambda _i: adv())
    path = tmp / "model.tflite"
    path.write_bytes(flat)
    with steps.step("runtime_check", "mcu: our reader + planner accept the .tflite"):
        graph = route_check.post_check(path, "mcu")
    return _Converted("mcu", flat, graph, tfm.layers, tf_diff)


def _litert_route(module: Any, data: load.Dataset, tmp: Path, steps: _Steps) -> _Converted:
    """litert-torch with full-int8 PT2E, then our runtime's reader and planner."""
    path = tmp / "model.tflite"
    with steps.step("litert", "litert: torch.export + full-int8 PT2E + conversion"):
        litert_route.convert(module, data.calib, path)
    with steps.step("runtime_check", "litert: our reader + planner accept the .tflite"):
        graph = route_check.post_check(path, "litert")
    return _Converted("litert", path.read_bytes(), graph, [], None)


def _torch_outputs(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([module(torch.from_numpy(np.ascontiguousarray(s[None]))).numpy()
                               for s in x])
