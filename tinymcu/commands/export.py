"""`tinymcu export`: PyTorch or ONNX → fully-int8 TFLite → C arrays for TFLM, with a report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from tinymcu.errors import TinymcuError

#: import name → pip name of what every export route needs (the ``[export]`` extra)
EXPORT_MODULES = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime",
                  "tensorflow": "tensorflow-cpu", "tflite_micro": "tflite-micro"}


def require_extra(modules: dict[str, str], extra: str) -> None:
    """Fail with the install command instead of a ModuleNotFoundError deep in a stage.

    Checked before anything heavy is imported, so a core install (numpy, click, rich, jinja2)
    answers ``tinymcu export`` with one line saying which extra to install.
    """
    missing = [pip for mod, pip in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise TinymcuError(f"tinymcu export needs {', '.join(missing)}, which this install "
                           f"lacks: pip install 'tinymcu[{extra}]'")


@click.command("export")
@click.argument("model")
@click.option("--calib", required=True, metavar="DATA",
              help="Calibration data: 'digits' (built-in) or an .npy/.npz of NCHW float samples "
                   "(.npz: arrays 'x' and optional labels 'y').")
@click.option("--out", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="Output directory (built in a temp dir and renamed at the end).")
@click.option("--name", default=None,
              help="Model name; the C array is named after it. Default: the model's class "
                   "(TorchScript), factory or file name.")
@click.option("--state-dict", type=click.Path(), default=None,
              help="A torch state_dict file to load into a factory/zoo model.")
@click.option("--input-shape", default=None, metavar="1,C,H,W",
              help="Static NCHW input shape (batch 1); pins dynamic ONNX dimensions.")
@click.option("--converter", type=click.Choice(["auto", "mcu", "litert"]), default="auto",
              show_default=True,
              help="mcu: tinymcu's builder (NHWC, SAME instead of PAD ops, BatchNorm folded); "
                   "litert: litert-torch with full-int8 PT2E (more torch ops; needs "
                   "tinymcu[litert]); auto: mcu, else litert.")
@click.option("--tflm-samples", default=256, show_default=True, type=click.IntRange(1),
              help="Evaluation samples run through TFLM and compared bit for bit.")
def command(model: str, calib: str, out_dir: str, name: str | None, state_dict: str | None,
            input_shape: str | None, converter: str, tflm_samples: int) -> None:
    """Export MODEL to int8 TFLite and C arrays, checked against TFLM.

    MODEL is an .onnx file, a TorchScript file, `tinymcu prune`'s output directory (or its
    model.json), a zoo name (demo_cnn, mobilenetv2) or a package.module:factory spec. The
    output holds model.tflite (NHWC, int8 in and out), model.onnx (mcu route),
    model_data.h/.c and export_report.json/.md; the report says which route ran and why.

    \b
    Example:
      tinymcu export demo_cnn --state-dict demo.pt --calib digits --out build/demo
      tinymcu export model.onnx --calib calib.npy --out build/model --name kws
      tinymcu export runs/fedtiny --calib digits --out runs/fedtiny/export
    """
    import os

    from rich.console import Console

    require_extra(EXPORT_MODULES, "export")

    # TensorFlow's C++ logging would otherwise add lines to stderr around a one-line error
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from tinymcu import inputs
    from tinymcu.export.load import parse_shape
    from tinymcu.export.pipeline import export_model
    from tinymcu.export.report import print_summary

    inputs.out_dir(Path(out_dir), [model, calib, state_dict])
    shape = parse_shape(input_shape) if input_shape else None
    result = export_model(model, calib, out_dir, name=name, state_dict=state_dict,
                          input_shape=shape, console=Console(stderr=True),
                          tflm_samples=tflm_samples, converter=converter)
    print_summary(result.report, Console())
    tflm = result.report["tflm"]
    if not tflm["bit_exact"]:
        click.echo(f"warning: TFLM and the TFLite reference kernels disagree on "
                   f"{tflm['mismatched_samples']} of {tflm['samples']} samples (max |Δ| "
                   f"{tflm['max_abs_diff']}); see export_report.json", err=True)
