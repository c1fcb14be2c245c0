"""export_report.json (versioned), export_report.md, and the rich summary on the terminal.

The JSON is the machine-readable record other stages and CI read; ``schema_version`` is bumped
whenever a key changes meaning. The Markdown and the terminal table show the same numbers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

SCHEMA_VERSION = 1


def write_reports(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write ``export_report.json`` and ``export_report.md`` into ``out_dir``."""
    js, md = out_dir / "export_report.json", out_dir / "export_report.md"
    js.write_text(json.dumps(report, indent=2) + "\n")
    md.write_text(render_markdown(report))
    return [js, md]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}%"


def summary_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    p, t = r["parity"], r["tflm"]
    rows = [
        ("model", f"{r['name']} ({r['source']['kind']}: {r['source']['model']})"),
        ("route", f"{r['route']['used']} ({r['route']['why']})"),
        ("layout", f"{r['layout']} (input {'x'.join(map(str, r['input']['shape']))}, "
                   f"int8 scale {r['input']['scale']:.6g} zp {r['input']['zero_point']})"),
        (".tflite", f"{r['tflite_bytes']:,} B ({r['weight_bytes']:,} B constants)"),
        ("ops", ", ".join(f"{k}×{v}" for k, v in r["op_counts"].items())),
        ("explicit PAD ops", str(r["explicit_pads"])),
        ("torch vs onnxruntime", "n/a" if r["onnx"]["torch_max_abs_diff"] is None
         else f"max |Δ| {r['onnx']['torch_max_abs_diff']:.3g}"),
        ("onnx vs TF float graph", "n/a" if r["onnx"]["tf_float_max_abs_diff"] is None
         else f"max |Δ| {r['onnx']['tf_float_max_abs_diff']:.3g}"),
        ("calibration", f"{r['calibration']['samples']} samples of {r['calibration']['data']}"),
        ("int8 vs float top-1", f"{_pct(p['top1_agreement'])} on {p['samples']} samples"),
        ("int8 vs float abs error",
         f"max {p['max_abs_error']:.4g}, mean {p['mean_abs_error']:.4g}"),
    ]
    if p.get("float_accuracy") is not None:
        rows.append(("accuracy float / int8",
                     f"{_pct(p['float_accuracy'])} / {_pct(p['int8_accuracy'])}"))
    rows += [
        ("TFLM == BUILTIN_REF", f"bit-exact on {t['samples']} samples" if t["bit_exact"] else
         f"{t['mismatched_samples']} of {t['samples']} samples differ "
         f"(max |Δ| {t['max_abs_diff']})"),
        ("TFLM arena (smallest working)", f"{t['min_arena_bytes']:,} B (recorded total "
                                          f"{t['recorded_total']:,}, head {t['recorded_head']:,})"),
        ("export time (with checks)", f"{r['timings_s']['total']:.1f} s"),
        ("tool warnings (in the JSON report)", str(len(r.get("warnings", [])))),
    ]
    return rows


def print_summary(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"tinymcu export: {report['name']}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for k, v in summary_rows(report):
        table.add_row(k, v)
    console.print(table)
    layers = Table(title="weights per layer: float vs int8")
    for col in ("layer", "kind", "weights", "float density", "int8 density", "zeros kept"):
        layers.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for lay in report["layers"]:
        layers.add_row(lay["name"], lay["kind"], f"{lay['weights']:,}",
                       _pct(lay["float_density"]), _pct(lay["int8_density"]),
                       "yes" if lay["zeros_preserved"] else "NO")
    console.print(layers)
    console.print(f"wrote {', '.join(report['files'].values())} to {report['out_dir']}")


def render_markdown(r: dict[str, Any]) -> str:
    lines = [f"# tinymcu export report: {r['name']}", "",
             f"Schema version {r['schema_version']}. The TFLite model is **{r['layout']}** "
             "(PyTorch/ONNX are NCHW; inputs must be transposed to NHWC before quantization).",
             "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v.replace('|', chr(92) + '|')} |" for k, v in summary_rows(r)]
    lines += ["", "## Weights per layer (float vs int8)", "",
              "| layer | kind | weights | float density | int8 density | float zeros | "
              "int8 zeros | zeros kept |", "|---|---|---:|---:|---:|---:|---:|---|"]
    lines += [f"| {x['name']} | {x['kind']} | {x['weights']} | {_pct(x['float_density'])} | "
              f"{_pct(x['int8_density'])} | {x['float_zeros']} | {x['int8_zeros']} | "
              f"{'yes' if x['zeros_preserved'] else 'NO'} |" for x in r["layers"]]
    if r.get("warnings"):
        lines += ["", "## Warnings from torch / onnxruntime / TensorFlow (captured)", ""]
        lines += [f"- {w}" for w in r["warnings"]]
    lines += ["", "## TFLM ops to register", "", ", ".join(r["ops"]), "",
              "## Files", ""]
    lines += [f"- `{v}`: {k}" for k, v in r["files"].items()]
    return "\n".join(lines) + "\n"
