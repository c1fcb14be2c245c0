"""`tinymcu export`: PyTorch or ONNX → fully-int8 TFLite → C arrays for TFLM, with a report."""

from __future__ import annotations

import click


@click.command("export")
@click.argument("model")
@click.option("--calib", required=True, metavar="DATA",
              help="Calibration data: 'digits' (built-in) or an .npy/.npz of NCHW float samples "
                   "(.npz: arrays 'x' and optional labels 'y').")
@click.option("--out", "out_dir", required=True, type=click.Path(), metavar="DIR",
              help="Output directory (built in a temp dir and renamed at the end).")
@click.option("--name", default=None, help="Model name; the C array is named after it.")
@click.option("--state-dict", type=click.Path(), default=None,
              help="A torch state_dict file to load into a factory/zoo model.")
@click.option("--input-shape", default=None, metavar="1,C,H,W",
              help="Static NCHW input shape (batch 1); pins dynamic ONNX dimensions.")
@click.option("--tflm-samples", default=256, show_default=True, type=click.IntRange(1),
              help="Evaluation samples run through TFLM and compared bit for bit.")
def command(model: str, calib: str, out_dir: str, name: str | None, state_dict: str | None,
            input_shape: str | None, tflm_samples: int) -> None:
    """Export MODEL to int8 TFLite and C arrays, checked against TFLM.

    MODEL is an .onnx file, a TorchScript file, a zoo name (demo_cnn, mobilenetv2) or a
    package.module:factory spec. The output holds model.onnx, model.tflite (NHWC, int8 in and
    out), model_data.h/.c and export_report.json/.md.

    \b
    Example:
      tinymcu export demo_cnn --state-dict demo.pt --calib digits --out build/demo
      tinymcu export model.onnx --calib calib.npy --out build/model --name kws
    """
    import os

    from rich.console import Console

    # TensorFlow's C++ logging would otherwise add lines to stderr around a one-line error
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from tinymcu.export.load import parse_shape
    from tinymcu.export.pipeline import export_model
    from tinymcu.export.report import print_summary

    shape = parse_shape(input_shape) if input_shape else None
    result = export_model(model, calib, out_dir, name=name, state_dict=state_dict,
                          input_shape=shape, console=Console(stderr=True),
                          tflm_samples=tflm_samples)
    print_summary(result.report, Console())
    tflm = result.report["tflm"]
    if not tflm["bit_exact"]:
        click.echo(f"warning: TFLM and the TFLite reference kernels disagree on "
                   f"{tflm['mismatched_samples']} of {tflm['samples']} samples (max |Δ| "
                   f"{tflm['max_abs_diff']}); see export_report.json", err=True)
