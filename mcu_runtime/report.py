"""Render a :class:`~tinymcu.mcu_runtime.check.CheckReport`: terminal table, Markdown, plots.

Every file comes from a named Jinja2 template in ``templates/`` (the SVG plot too, so the
check path needs no plotting library); PNG output uses matplotlib when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from rich.console import Console
from rich.table import Table

from tinymcu.errors import TinymcuError
from tinymcu.mcu_runtime.check import CheckReport

_ENV = Environment(loader=PackageLoader("tinymcu.mcu_runtime", "templates"),
                   undefined=StrictUndefined, keep_trailing_newline=True)

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")


def to_json(report: CheckReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


def to_markdown(report: CheckReport) -> str:
    return _ENV.get_template("check_report.md.j2").render(r=report)


def print_terminal(report: CheckReport, console: Console | None = None) -> None:
    """The per-op table, the budget line and the verdict."""
    console = console or Console()
    s = report.chosen
    table = Table(title=f"{report.model.name}: {s.kind} schedule, target {report.target}")
    for col in ("#", "op", "output", "MACs", "live B", "high-water B"):
        table.add_column(col, justify="left" if col in ("op", "output") else "right")
    for o in s.ops:
        table.add_row(str(o.index), o.kind, "×".join(map(str, o.output_shape)), f"{o.macs:,}",
                      f"{o.live_bytes:,}", f"{o.high_water_bytes:,}")
    console.print(table)
    for name, other in report.schedules.items():
        console.print(f"  {name:6s} arena {other.arena_bytes:>10,} B   MACs {other.macs:>12,}   "
                      f"{other.summary}")
    if report.fused_ops:
        console.print(f"  {report.fused_ops} expand + depthwise pair(s) run fused, channel by "
                      f"channel (--fuse)")
    if report.note:
        console.print(f"  note: {report.note}")
    b = report.budget
    console.print(f"SRAM  {s.arena_bytes:,} / {b.sram_bytes:,} B "
                  f"({100 * s.arena_bytes / b.sram_bytes:.1f}%), lower bound "
                  f"{s.lower_bound_bytes:,} B; flash {report.flash_bytes:,} / {b.flash_bytes:,} B "
                  f"({report.flash_what})" + (f" on {b.board}" if b.board else ""))
    style = "bold green" if report.fits else "bold red"
    console.print(f"[{style}]{'FITS' if report.fits else 'DOES NOT FIT'}[/]: {report.verdict}")


def plot_svg(curves: dict[str, list[int]], budget: int | None, title: str) -> str:
    """Memory over execution order, one polyline per curve, a dashed budget line."""
    W, H, L, T, R, B = 720, 360, 70, 30, 20, 40
    PW, PH = W - L - R, H - T - B
    top = max([max(c) for c in curves.values() if c] + [budget or 0, 1]) * 1.1
    steps = max(len(c) for c in curves.values()) or 1

    def y(v: float) -> float:
        return T + PH - PH * v / top

    series = []
    for (label, c), color in zip(curves.items(), COLORS):
        pts = " ".join(f"{L + PW * (i + 0.5) / steps:.1f},{y(v):.1f}" for i, v in enumerate(c))
        series.append({"label": label, "color": color, "points": pts})
    n = 5
    yticks = [{"y": y(top * k / n), "label": f"{top * k / n / 1024:.0f}"} for k in range(n + 1)]
    return _ENV.get_template("memory_plot.svg.j2").render(
        W=W, H=H, L=L, T=T, PW=PW, PH=PH, title=title, series=series, yticks=yticks,
        budget_y=y(budget) if budget else None,
        budget_label=f"{budget / 1024:.0f} KiB" if budget else "")


def write_plot(report: CheckReport, path: Path) -> None:
    """Plot each schedule's arena high-water per op (ops in execution order; for a patch
    stage, the highest point over its tiles), with the budget line. Writes .svg or .png."""
    curves = {f"{name} (arena {s.arena_bytes / 1024:.1f} KiB)": [o.high_water_bytes for o in s.ops]
              for name, s in report.schedules.items()}
    title = f"{report.model.name}: SRAM high-water per op"
    if path.suffix.lower() == ".svg":
        path.write_text(plot_svg(curves, report.budget.sram_bytes, title))
    elif path.suffix.lower() == ".png":
        try:
            import matplotlib
        except ImportError:
            raise TinymcuError("PNG plots need matplotlib (pip install 'tinymcu[plot]'); "
                               "or write .svg") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4))
        for label, c in curves.items():
            ax.step(range(len(c)), [v / 1024 for v in c], where="mid", label=label)
        ax.axhline(report.budget.sram_bytes / 1024, color="red", ls="--", label="budget")
        ax.set(xlabel="op (execution order)", ylabel="SRAM (KiB)", title=title)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    else:
        raise TinymcuError(f"--plot {path}: use a .svg or .png file name")
