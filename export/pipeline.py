"""The export pipeline: model + calibration data → ONNX → float TF → int8 .tflite → checks → C.

Every file is built in a temporary directory next to ``out_dir`` and moved into place only
when every step (including the TFLM checks) succeeded, so a failure leaves ``out_dir``
exactly as it was. Heavy imports (torch, TensorFlow) happen inside the steps that need them.
"""

from __future__ import annotations

import collections
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tinymcu import __version__
from tinymcu.errors import TinymcuError
from tinymcu.export import c_arrays, load, parity, report, tflm_check, to_onnx
from tinymcu.export.report import SCHEMA_VERSION
from tinymcu.outputs import atomic_dir

#: samples compared between TFLM and BUILTIN_REF (each is a full TFLM invoke in a child)
TFLM_SAMPLES = 256
#: ONNX vs traced-TF float tolerance, relative to max |output| (catches builder bugs)
TF_FLOAT_TOL = 1e-3


@dataclass
class ExportResult:
    out_dir: Path
    tflite_path: Path
    onnx_path: Path
    c_files: list[Path]
    report: dict[str, Any]


class _Steps:
    """Rich progress for the long steps, plus wall time per step for the report."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=not console.is_terminal)
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, key: str, description: str, total: int | None = 1):
        task = self.progress.add_task(description, total=total)
        start = time.perf_counter()
        yield lambda n=1: self.progress.advance(task, n)
        self.timings[key] = time.perf_counter() - start
        self.progress.update(task, completed=total, visible=False)


def export_model(model_spec: str, calib: str, out_dir: str | Path, *, name: str | None = None,
                 state_dict: str | Path | None = None,
                 input_shape: tuple[int, ...] | None = None,
                 console: Console | None = None, tflm_samples: int = TFLM_SAMPLES
                 ) -> ExportResult:
    """Export ``model_spec`` (ONNX file, TorchScript file, zoo name or ``pkg.mod:factory``)
    with calibration data ``calib`` (``digits`` or .npy/.npz NCHW) into ``out_dir``."""
    console = console or Console(stderr=True)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp made it 0700; the export is an ordinary directory
        source = load.load_model(model_spec, state_dict)
        data = load.load_data(calib)
        steps = _Steps(console)
        with steps.progress:
            result = _build(source, data, tmp, name or source.name, model_spec, state_dict,
                            input_shape, steps, tflm_samples)
        result.report["out_dir"] = str(out_dir)
        report.write_reports(result.report, tmp)
    return ExportResult(out_dir, out_dir / result.tflite_path.name,
                        out_dir / result.onnx_path.name,
                        [out_dir / p.name for p in result.c_files], result.report)


def _build(source: load.ModelSource, data: load.Dataset, tmp: Path, name: str, model_spec: str,
           state_dict: str | Path | None, input_shape: tuple[int, ...] | None, steps: _Steps,
           tflm_samples: int) -> ExportResult:
    from tinymcu.mcu_runtime.tflite_reader import load_tflite

    t0 = time.perf_counter()
    onnx_path = tmp / "model.onnx"
    with steps.step("onnx", "ONNX export + onnxruntime check"):
        if source.module is not None:
            shape = input_shape or source.default_input_shape or (1, *data.calib.shape[1:])
            load.check_data_shape(data, shape)
            check = to_onnx.torch_to_onnx(source.module, shape, onnx_path, data.calib[:16])
        else:
            check = to_onnx.check_onnx(source.onnx_path, input_shape)
            load.check_data_shape(data, check.input_shape)
            import onnx

            onnx.save(check.model, str(onnx_path))
    load.check_data_shape(data, check.input_shape)
    if data.eval_x.shape[1:] != data.calib.shape[1:]:
        raise TinymcuError("evaluation and calibration samples differ in shape")

    from tinymcu.export import onnx_to_tf, quantize

    with steps.step("tf_build", "ONNX → TensorFlow graph"):
        tfm = onnx_to_tf.build_tf(check.model, check.input_name, check.input_shape)
        probe = data.calib[:8]
        ref = to_onnx.run_onnx(check, probe)
        tf_diff = float(np.max(np.abs(tfm.run(probe) - ref)))
        if tf_diff / max(1.0, float(np.max(np.abs(ref)))) > TF_FLOAT_TOL:
            raise TinymcuError(f"the TensorFlow graph differs from ONNX by {tf_diff:.3g}; "
                               "this is a tinymcu converter bug — please report the model")
    with steps.step("quantize", "int8 calibration + conversion", total=len(data.calib)) as adv:
        flat = quantize.quantize_int8(tfm, data.calib, on_sample=lambda _i: adv())
    tflite_path = tmp / "model.tflite"
    tflite_path.write_bytes(flat)
    graph = load_tflite(tflite_path)
    in_q = graph.tensors[graph.inputs[0]].quant
    out_q = graph.tensors[graph.outputs[0]].quant

    with steps.step("reference", "int8 reference run (BUILTIN_REF) + parity"):
        float_out = onnx_to_tf.to_tf_layout(to_onnx.run_onnx(check, data.eval_x))
        q_inputs = parity.quantize_input(data.eval_x, in_q)
        ref_out = tflm_check.reference_outputs(tflite_path, q_inputs)
        out_parity = parity.output_parity(float_out, ref_out, out_q, data.eval_y)
        densities = parity.layer_densities(tfm.layers, graph)
    with steps.step("tflm", "TFLM load, bit-exact check, smallest arena"):
        tflm = tflm_check.tflm_check(tflite_path, q_inputs[:tflm_samples], ref_out)
    c_files = c_arrays.write_c_arrays(flat, graph, tmp, name, tflm.min_arena_bytes,
                                      source=model_spec)
    steps.timings["total"] = time.perf_counter() - t0

    t_in, t_out = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    rep = {
        "schema_version": SCHEMA_VERSION, "tool": "tinymcu", "version": __version__,
        "name": name, "c_identifier": c_arrays.c_identifier(name),
        "source": {"model": model_spec, "kind": "torch" if source.module is not None else "onnx",
                   "state_dict": None if state_dict is None else str(state_dict)},
        "layout": "NHWC",
        "input": {"shape_nchw": list(check.input_shape), "shape": list(t_in.shape),
                  "dtype": t_in.dtype, "scale": float(in_q.scale.reshape(-1)[0]),
                  "zero_point": int(in_q.zero_point.reshape(-1)[0])},
        "output": {"shape": list(t_out.shape), "dtype": t_out.dtype,
                   "scale": float(out_q.scale.reshape(-1)[0]),
                   "zero_point": int(out_q.zero_point.reshape(-1)[0])},
        "tflite_bytes": len(flat), "weight_bytes": graph.weight_bytes(),
        "ops": [e.builtin for e in c_arrays.tflm_ops(graph)],
        "op_counts": dict(collections.Counter(op.kind for op in graph.ops)),
        "explicit_pads": tfm.explicit_pads,
        "onnx": {"opset": to_onnx.OPSET, "torch_max_abs_diff": check.torch_max_abs_diff,
                 "tf_float_max_abs_diff": tf_diff},
        "calibration": {"data": data.name, "samples": len(data.calib),
                        "eval_samples": len(data.eval_x)},
        "parity": out_parity.to_dict(),
        "layers": [d.to_dict() for d in densities],
        "tflm": tflm.to_dict(),
        "files": {"tflite": "model.tflite", "onnx": "model.onnx", "c_header": "model_data.h",
                  "c_source": "model_data.c", "report_json": "export_report.json",
                  "report_md": "export_report.md"},
        "timings_s": {k: round(v, 3) for k, v in steps.timings.items()},
    }
    return ExportResult(tmp, tflite_path, onnx_path, c_files, rep)
