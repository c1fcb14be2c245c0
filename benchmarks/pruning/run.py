"""FedTiny vs baselines: accuracy and client→server bytes over densities and seeds.

Default setting (the issue's): sklearn digits, 10 clients, Dirichlet α=0.5 non-IID, densities
20/10/5 %, seeds 0/1/2, 30 rounds, demo CNN. Every run goes through Flower's simulation
runtime with the same ClientApp/ServerApp as a deployment. Dense FedAvg does not depend on the
density, so it runs once per seed. Runs unchanged on a GPU with a bigger dataset, e.g.

    python benchmarks/pruning/run.py --data cifar10.npz --model resnet8 --device cuda --rounds 100

Writes benchmarks/results/pruning.md (and pruning.json with every run's report).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from tinymcu.prune.config import PruneConfig
from tinymcu.prune.run import run_pruning, shutdown_backend

RESULTS = Path(__file__).resolve().parents[1] / "results"


def _ms(xs: list[float], scale: float = 1.0, fmt: str = "{:.2f}") -> str:
    xs = [x * scale for x in xs]
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{fmt.format(statistics.mean(xs))} ± {fmt.format(sd)}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--model", default="demo_cnn")
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--lr-schedule", default="cosine", choices=["cosine", "constant"])
    ap.add_argument("--densities", default="0.2,0.1,0.05")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="fedtiny,globalmp,dense")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--out", type=Path, default=RESULTS / "pruning.md")
    args = ap.parse_args()

    densities = [float(d) for d in args.densities.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    jobs = [(m, d, s) for s in seeds for m in methods
            for d in ([1.0] if m == "dense" else densities)]
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="tinymcu-bench-prune-"))
    runs: list[dict] = []
    t_all = time.monotonic()
    try:
        for i, (method, density, seed) in enumerate(jobs, 1):
            cfg = PruneConfig(model=args.model, data=args.data, clients=args.clients,
                              alpha=args.alpha, rounds=args.rounds, density=density,
                              method=method, seed=seed, epochs=args.epochs, batch=args.batch,
                              lr=args.lr, lr_schedule=args.lr_schedule, device=args.device,
                              out=str(work / f"{method}-{density}-{seed}"))
            t0 = time.monotonic()
            rep = run_pruning(cfg, keep_backend=True).report
            sec = time.monotonic() - t0
            runs.append({"method": method, "density_target": density, "seed": seed,
                         "accuracy": rep["final_accuracy"], "density": rep["density"],
                         "bytes_up": rep["client_to_server_bytes"],
                         "topk_bytes_up": rep["topk_upload_bytes"],
                         "topk_client_memory": rep["topk_client_memory_bytes"],
                         "seconds": sec, "report": rep})
            console.print(f"[{i}/{len(jobs)}] {method:8s} d={density:<5} seed={seed} "
                          f"acc={rep['final_accuracy']:.4f} up={rep['client_to_server_bytes']:,} B "
                          f"({sec:.0f} s)")
            # Rewritten after every run so an interrupted benchmark still leaves its numbers.
            write(args, runs, methods, densities, seeds, time.monotonic() - t_all,
                  len(jobs), console if i == len(jobs) else None)
    finally:
        shutdown_backend()
        shutil.rmtree(work, ignore_errors=True)


def write(args: argparse.Namespace, runs: list[dict], methods: list[str],
          densities: list[float], seeds: list[int], total: float, planned: int,
          console: Console | None) -> None:
    """Summarise the finished runs into the Markdown table (and print it at the end)."""
    table = Table(title="Federated pruning (final test accuracy, mean ± std over seeds)")
    for col in ("method", "target density", "accuracy %", "client→server MB",
                "of which top-k KB", "client top-k memory B", "s/run"):
        table.add_column(col)
    rows = []
    for method in methods:
        for d in ([1.0] if method == "dense" else densities):
            rs = [r for r in runs if r["method"] == method and r["density_target"] == d]
            if not rs:
                continue
            row = [method, f"{d:.0%}", _ms([r["accuracy"] for r in rs], 100),
                   _ms([r["bytes_up"] for r in rs], 1e-6, "{:.2f}"),
                   _ms([r["topk_bytes_up"] for r in rs], 1e-3, "{:.1f}"),
                   str(max(r["topk_client_memory"] for r in rs)),
                   f"{statistics.mean(r['seconds'] for r in rs):.0f}"]
            rows.append(row)
            table.add_row(*row)

    def acc(m: str, d: float) -> float:
        return statistics.mean(r["accuracy"] for r in runs
                               if r["method"] == m and r["density_target"] == d)

    verdicts = []
    if len(runs) < planned:
        verdicts.append(f"PARTIAL: {len(runs)} of {planned} runs finished")
    elif {"fedtiny", "globalmp"} <= set(methods):
        ok = all(acc("fedtiny", d) >= acc("globalmp", d) for d in densities)
        verdicts.append(f"FedTiny ≥ global magnitude pruning at every density: "
                        f"{'yes' if ok else 'NO'}")
    if len(runs) == planned and {"fedtiny", "dense"} <= set(methods) and 0.1 in densities:
        gap = 100 * (acc("dense", 1.0) - acc("fedtiny", 0.1))
        verdicts.append(f"FedTiny at 10% vs dense: {gap:+.2f} points below dense "
                        f"(target ≤ 2): {'yes' if gap <= 2 else 'NO'}")
    if console is not None:
        console.print(table)
        for v in verdicts:
            console.print(v)

    md = ["# Federated pruning benchmark", "",
          f"`python benchmarks/pruning/run.py` — data `{args.data}`, model `{args.model}`, "
          f"{args.clients} clients, Dirichlet α={args.alpha} non-IID, {args.rounds} rounds × "
          f"{args.epochs} local epochs (batch {args.batch}, lr {args.lr} {args.lr_schedule}), "
          f"seeds {seeds}, "
          f"device `{args.device}`. Flower {_flwr_version()} simulation runtime (Ray backend, one "
          f"client actor per core), same ClientApp/ServerApp as a deployment. Total wall time "
          f"{total / 60:.1f} min.", "",
          "Accuracy: final-round accuracy on the held-out 20 % test split. Bytes: every "
          "client→server message (arrays, metrics, FedTiny's BN-selection replies and top-k "
          "gradient reports) as Flower counts them. Sparse methods upload only the values at "
          "active positions (the server knows the mask), so their bytes fall with density; the "
          "global-MP baseline uploads dense weights during its dense half.", "",
          "| " + " | ".join(c.header for c in table.columns) + " |",
          "|" + "---|" * len(table.columns)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += [""] + [f"- {v}" for v in verdicts] + [""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    slim = [{k: v for k, v in r.items() if k != "report"}
            | {"history": [h["test_acc"] for h in r["report"]["rounds"]]} for r in runs]
    args.out.with_suffix(".json").write_text(json.dumps(slim, indent=1))
    if console is not None:
        console.print(f"wrote {args.out}")


def _flwr_version() -> str:
    import flwr

    return flwr.__version__


if __name__ == "__main__":
    main()
