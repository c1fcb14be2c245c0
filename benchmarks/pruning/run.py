"""FedTiny vs fair baselines: accuracy, traffic and measured client memory, with paired intervals.

Grid: methods × densities × datasets × seeds. Methods: ``fedtiny``, its ablations
``fedtiny-noabns`` (1 candidate: no adaptive BN selection) and ``fedtiny-noregrow`` (no
progressive pruning), ``feddst`` (client prune/regrow, server mask aggregation), ``globalmp``
(global magnitude with a per-layer floor) and ``erkmp`` (ERK layer-wise magnitude), both pruned
once after the dense half; ``dense`` FedAvg runs once per dataset and seed. Built-in data only
(no download): ``digits`` (demo CNN), ``mnist1d`` (1-D CNN), ``animal-mnist`` (small CNN); ≥ 20
clients, Dirichlet α non-IID, partial participation (``--fraction``). Every run goes through
``flwr run`` on one simulation federation (the jobs in turn, same nodes) with the same
ClientApp/ServerApp as a deployment.

Statistics: every method is compared with FedTiny on the same dataset, density and seed (same
split, same initial weights); the table gives the mean paired difference with a 95 % Student-t
interval over seeds. Targets (issue 14) are printed as met / NOT met, never assumed.

    python benchmarks/pruning/run.py               # the default grid: 150 runs (~30-60 min)
    python benchmarks/pruning/run.py --quick               # a reduced grid
    python benchmarks/pruning/run.py --datasets digits     # the demo CNN's own grid (75 runs)
    python benchmarks/pruning/run.py --device cuda --rounds 100 --seeds 0,1,2,3,4

Defaults (12 rounds x 5 local epochs, batch 32, 5 of 20 clients per round). Measured on the 2-core
machine, quiet: a round costs ~1.2 s of Flower messaging and client set-up, while an unprofiled
local epoch of a client is ~0.07 s (animal-mnist, 400 samples) — dense animal-mnist took 13.0 s
for 8 rounds x 1 epoch and 32.1 s for 24 x 1. Clients used to profile memory every round, which
cost ~0.3 s plus ~3x the training it watched (8 x 5 took 23.9 s); profiled once per kind of round,
8 x 5 runs take ~8-9 s. So local epochs are cheap, and 5 of them are what lets dense FedAvg train
far enough (~80 % animal-mnist, ~75 % mnist1d) to tell methods apart; at 8 rounds x 1 epoch it
stopped at 54 % / 43 ± 19 %.

Writes benchmarks/results/pruning.md (and pruning.json with every run).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tinymcu.prune.config import PruneConfig
from tinymcu.prune.run import run_pruning_many

RESULTS = Path(__file__).resolve().parents[1] / "results"
MODELS = {"digits": "demo_cnn", "mnist1d": "seq1d_cnn", "animal-mnist": "small_cnn"}
METHODS = {  # label -> (config method, overrides)
    "fedtiny": ("fedtiny", {}),
    "fedtiny-noabns": ("fedtiny", {"candidates": 1}),
    "fedtiny-noregrow": ("fedtiny", {"regrow": False}),
    "feddst": ("feddst", {}),
    "globalmp": ("globalmp", {}),
    "erkmp": ("erkmp", {}),
    "dense": ("dense", {}),
}
BASELINES = ("feddst", "globalmp")
HARD = ("mnist1d", "animal-mnist")


def t95(n: int) -> float:
    """Two-sided 95 % Student-t quantile for n samples (n - 1 degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1)) if n > 1 else math.inf


def mean_ci(xs: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % interval)."""
    m = statistics.mean(xs)
    if len(xs) < 2:
        return m, math.inf
    return m, t95(len(xs)) * statistics.stdev(xs) / math.sqrt(len(xs))


def _fmt(m: float, h: float, scale: float = 100.0) -> str:
    return f"{m * scale:.2f} ± {h * scale:.2f}" if math.isfinite(h) else f"{m * scale:.2f}"


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", default="mnist1d,animal-mnist")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--densities", default="0.2,0.1,0.05,0.02")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=0.25,
                    help="share of clients sampled per round (FedAvg fraction_train)")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--quick", action="store_true",
                    help="reduced grid: the two harder datasets, densities 5/2 %%, FedTiny, "
                         "FedDST, global magnitude and dense, 8 rounds")
    ap.add_argument("--out", type=Path, default=RESULTS / "pruning.md")
    ap.add_argument("--chunk", type=int, default=25,
                    help="jobs per federation: a fresh one (new Ray actors) every CHUNK jobs, "
                         "as the client actors' memory grows over a long batch")
    ap.add_argument("--keep", action="store_true",
                    help="keep the runs already in OUT's .json and run only the missing ones")
    ap.add_argument("--render", type=int, metavar="PLANNED", default=0,
                    help="only rewrite OUT from OUT's .json (runs of a grid of PLANNED runs, "
                         "e.g. one stopped early); give the grid's own settings")
    args = ap.parse_args()
    if args.quick:
        args.datasets, args.densities = "mnist1d,animal-mnist", "0.05,0.02"
        args.methods, args.rounds = "fedtiny,feddst,globalmp,dense", 8
    return args


def main() -> None:
    args = parse()
    if args.render:
        runs = json.loads(args.out.with_suffix(".json").read_text())
        write(args, runs, args.render, sum(r["seconds"] for r in runs), [])
        print(args.out.read_text())
        return
    datasets = args.datasets.split(",")
    densities = [float(d) for d in args.densities.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    # The harder datasets first (seed by seed), so a grid cut short still has their seeds.
    jobs = [(ds, m, d, s) for group in ([x for x in datasets if x in HARD],
                                        [x for x in datasets if x not in HARD])
            for s in seeds for ds in group for m in methods
            for d in ([1.0] if m == "dense" else densities)]
    work = Path(tempfile.mkdtemp(prefix="tinymcu-bench-prune-"))
    labels: dict[str, tuple[str, str, float, int]] = {}
    cfgs = []
    for ds, label, density, seed in jobs:
        method, over = METHODS[label]
        out = work / f"{ds}-{label}-{density}-{seed}"
        labels[str(out)] = (ds, label, density, seed)
        cfgs.append(PruneConfig(model=MODELS.get(ds, "demo_cnn"), data=ds, clients=args.clients,
                                fraction=args.fraction, alpha=args.alpha, rounds=args.rounds,
                                density=density, method=method, seed=seed, epochs=args.epochs,
                                batch=args.batch, lr=args.lr, device=args.device, out=str(out),
                                **over))
    runs: list[dict] = []
    if args.keep and args.out.with_suffix(".json").exists():
        runs = json.loads(args.out.with_suffix(".json").read_text())
        have = {(r["dataset"], r["method"], r["density_target"], r["seed"]) for r in runs}
        cfgs = [c for c in cfgs if labels[c.out] not in have]
    failed: list[str] = []
    t_all = time.monotonic()

    def done(cfg: PruneConfig, rep: dict | None, sec: float, error: str | None) -> None:
        ds, label, density, seed = labels[cfg.out]
        i = len(runs) + len(failed) + 1
        if rep is None:
            failed.append(f"{ds} {label} d={density} seed={seed}: {error}")
            print(f"[{i}/{len(jobs)}] {ds} {label} d={density} seed={seed} FAILED: {error}",
                  flush=True)
        else:
            runs.append({"dataset": ds, "method": label, "density_target": density,
                         "seed": seed, "accuracy": rep["final_accuracy"],
                         "density": rep["density"], "bytes_up": rep["client_to_server_bytes"],
                         "bytes_down": rep["server_to_client_bytes"],
                         "topk_bytes_up": rep["topk_upload_bytes"],
                         "client_peak_bytes": rep["client_peak_bytes"],
                         "min_layer_density": min(rep["layer_density"].values()),
                         "layer_density": rep["layer_density"],
                         "excluded": len(rep["excluded_clients"]),
                         "seconds": sec,
                         "history": [h["test_acc"] for h in rep["rounds"]]})
            print(f"[{i}/{len(jobs)}] {ds:12s} {label:16s} d={density:<5} seed={seed} "
                  f"acc={rep['final_accuracy']:.4f} up={rep['client_to_server_bytes']:,} B "
                  f"peak={rep['client_peak_bytes']:,} B ({sec:.0f} s)", flush=True)
        shutil.rmtree(cfg.out, ignore_errors=True)
        # Rewritten after every run so an interrupted benchmark still leaves its numbers.
        write(args, runs, len(jobs), time.monotonic() - t_all, failed)

    try:
        for i in range(0, len(cfgs), args.chunk):
            run_pruning_many(cfgs[i:i + args.chunk], done)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.out.read_text())


def _sel(runs: list[dict], ds: str, m: str, d: float) -> dict[int, dict]:
    return {r["seed"]: r for r in runs
            if r["dataset"] == ds and r["method"] == m and r["density_target"] == d}


def paired(runs: list[dict], ds: str, a: str, b: str, d: float,
           db: float | None = None) -> tuple[float, float, int] | None:
    """Mean and 95 % half-width of acc(a) − acc(b) over the seeds both finished."""
    ra, rb = _sel(runs, ds, a, d), _sel(runs, ds, b, d if db is None else db)
    common = sorted(set(ra) & set(rb))
    if not common:
        return None
    m, h = mean_ci([ra[s]["accuracy"] - rb[s]["accuracy"] for s in common])
    return m, h, len(common)


def targets(runs: list[dict], datasets: list[str], densities: list[float]) -> list[list[str]]:
    """Issue 14's targets, one row each: [target, where, measured, met?]."""
    rows = []
    for ds in (d for d in datasets if d in HARD):
        for d in (x for x in (0.05, 0.02) if x in densities):
            cands = [(statistics.mean(r["accuracy"] for r in _sel(runs, ds, b, d).values()), b)
                     for b in BASELINES if _sel(runs, ds, b, d)]
            if not cands or not _sel(runs, ds, "fedtiny", d):
                continue
            best = max(cands)[1]
            p = paired(runs, ds, "fedtiny", best, d)
            assert p is not None
            m, h, n = p
            met = "met" if n > 1 and m - h > 0 else "NOT met"
            rows.append([f"FedTiny > best baseline ({best}) by more than the interval",
                         f"{ds}, {d:.0%}", f"{_fmt(m, h)} points (n={n})", met])
    for ds in datasets:
        if 0.1 in densities and _sel(runs, ds, "fedtiny", 0.1) and _sel(runs, ds, "dense", 1.0):
            p = paired(runs, ds, "dense", "fedtiny", 1.0, db=0.1)
            if p:
                m, h, n = p
                rows.append(["FedTiny within 2 points of dense", f"{ds}, 10%",
                             f"dense − FedTiny {_fmt(m, h)} points (n={n})",
                             "met" if m <= 0.02 else "NOT met"])
    for ds in datasets:
        dense = _sel(runs, ds, "dense", 1.0)
        for d in densities:
            ft = _sel(runs, ds, "fedtiny", d)
            if dense and ft:
                ratio = statistics.mean(r["bytes_up"] for r in ft.values()) / \
                    statistics.mean(r["bytes_up"] for r in dense.values())
                rows.append(["uplink ≤ 0.25× dense FedAvg", f"{ds}, {d:.0%}", f"{ratio:.3f}×",
                             "met" if ratio <= 0.25 else "NOT met"])
    return rows


def majority_share(ds: str, clients: int, alpha: float, seed: int) -> float:
    """Test accuracy of a constant predictor (the test split's most common class)."""
    import numpy as np

    from tinymcu.prune.data import Split

    y = Split(ds, clients, alpha, seed).test().y
    return float(np.bincount(y).max() / len(y))


def checks(args: argparse.Namespace, runs: list[dict]) -> list[list[str]]:
    """The issue's "done when" items the grid itself can show: [check, measured, met?]."""
    rows = []
    if runs:
        worst = min(runs, key=lambda r: r["min_layer_density"])
        rows.append(["no run leaves a prunable layer empty",
                     f"lowest layer density of any run {worst['min_layer_density']:.4f} "
                     f"({worst['dataset']} {worst['method']} {worst['density_target']:.0%} "
                     f"seed {worst['seed']})",
                     "met" if worst["min_layer_density"] > 0 else "NOT met"])
        share = {(r["dataset"], r["seed"]): majority_share(r["dataset"], args.clients,
                                                          args.alpha, r["seed"])
                 for r in runs}
        const = [r for r in runs if r["accuracy"] <= share[r["dataset"], r["seed"]] + 1e-9]
        rows.append(["no run is a constant predictor (accuracy above the test split's "
                     "majority share)",
                     f"{len(const)} of {len(runs)} runs at or below it"
                     + (": " + ", ".join(f"{r['dataset']} {r['method']} "
                                         f"{r['density_target']:.0%} s{r['seed']} "
                                         f"{r['accuracy']:.3f}" for r in const[:8])
                        if const else
                        f" (majority shares {min(share.values()):.3f}–"
                        f"{max(share.values()):.3f})"),
                     "met" if not const else "NOT met"])
        rows.append(["client peak memory is measured",
                     f"{min(r['client_peak_bytes'] for r in runs) / 1024:.0f}–"
                     f"{max(r['client_peak_bytes'] for r in runs) / 1024:.0f} KB "
                     "(torch allocator events)",
                     "met" if all(r["client_peak_bytes"] > 0 for r in runs) else "NOT met"])
    return rows


def write(args: argparse.Namespace, runs: list[dict], planned: int, total: float,
          failed: list[str]) -> None:
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    methods = list(dict.fromkeys(r["method"] for r in runs))
    densities = sorted({r["density_target"] for r in runs if r["density_target"] < 1},
                       reverse=True)
    head = ["dataset", "method", "density", "accuracy % (95% CI)", "Δ vs FedTiny (paired)",
            "min layer density", "uplink MB", "downlink MB", "client peak KB", "s/run", "seeds"]
    rows = []
    for ds in datasets:
        for m in methods:
            for d in ([1.0] if m == "dense" else densities):
                sel = list(_sel(runs, ds, m, d).values())
                if not sel:
                    continue
                acc = mean_ci([r["accuracy"] for r in sel])
                delta = "—"
                if m != "fedtiny" and m != "dense":
                    p = paired(runs, ds, m, "fedtiny", d)
                    delta = _fmt(p[0], p[1]) if p else "—"
                rows.append([ds, m, f"{d:.0%}", _fmt(*acc), delta,
                             f"{min(r['min_layer_density'] for r in sel):.3f}",
                             f"{statistics.mean(r['bytes_up'] for r in sel) / 1e6:.2f}",
                             f"{statistics.mean(r['bytes_down'] for r in sel) / 1e6:.2f}",
                             f"{max(r['client_peak_bytes'] for r in sel) / 1024:.0f}",
                             f"{statistics.mean(r['seconds'] for r in sel):.0f}", str(len(sel))])
    tg = targets(runs, datasets, densities)
    status = (f"**PARTIAL: {len(runs)} of {planned} runs finished.**" if len(runs) < planned
              else f"All {planned} runs finished.")
    md = ["# Federated pruning benchmark", "",
          f"`python benchmarks/pruning/run.py {'--quick ' if args.quick else ''}"
          f"--datasets {args.datasets} --methods {args.methods} --densities {args.densities} "
          f"--seeds {args.seeds} --rounds {args.rounds} --epochs {args.epochs} "
          f"--batch {args.batch} --lr {args.lr} --clients {args.clients} "
          f"--fraction {args.fraction}` — {args.clients} clients, "
          f"{args.fraction:.0%} sampled per round, Dirichlet α={args.alpha} non-IID, "
          f"{args.rounds} rounds × {args.epochs} local epoch(s) (batch {args.batch}, lr {args.lr} "
          f"cosine), device `{args.device}`. `flwr run` (Flower {_flwr_version()}) on a simulation "
          f"federation (Ray), "
          f"same ClientApp/ServerApp as a deployment. Models: "
          + ", ".join(f"{k} → `{v}`" for k, v in MODELS.items() if k in datasets)
          + f". Wall time {total / 60:.1f} min. {status}", "",
          "Accuracy: final-round accuracy on the held-out 20 % test split, mean over seeds with "
          "a 95 % Student-t interval. Δ: this method minus FedTiny on the same dataset, density "
          "and seed (paired), 95 % interval. Uplink/downlink: every message's records as Flower "
          "counts them (weights travel packed under the mask; masks only when they change; "
          "FedTiny's candidates as seeds). Client peak: the largest peak of torch's CPU "
          "allocator measured during one client's local round (model, masks and local data "
          "held, plus the measured growth during training; each node profiles the first round "
          "of each kind — plain, top-k report, FedDST readjust — and again only when a round's "
          "top-k/readjust k exceeds the measured one's: later rounds of a kind repeat its "
          "allocations, and profiling every round cost ~3× the training itself). Masked "
          "training holds dense tensors here, so the column cannot show that globalmp and erkmp "
          "train the dense model on the clients for the first half of the run (a client under "
          "FedTiny's memory budget could not); their uplink shows it. Min layer density: the "
          "emptiest prunable layer of any seed's final model (never 0).", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    md += ["", "## Targets (issue 14)", "", "| target | where | measured | target met? |",
           "|---|---|---|---|"]
    md += ["| " + " | ".join(r) + " |" for r in tg] or ["| (no target computable yet) | | | |"]
    md += ["", "## Checks", "", "| check | measured | met? |", "|---|---|---|"]
    md += ["| " + " | ".join(r) + " |" for r in checks(args, runs)]
    if failed:
        md += ["", "## Failed runs", ""] + [f"- {f}" for f in failed]
    md.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md))
    args.out.with_suffix(".json").write_text(json.dumps(runs, indent=1))


def _flwr_version() -> str:
    import flwr

    return flwr.__version__


if __name__ == "__main__":
    main()
