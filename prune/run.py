"""Public entry point: ``run_pruning(config) -> PruneResult``.

Runs the federated job the way Flower runs simulations now: ``flwr run`` of a generated app
(``prune/deploy.py``: the same ClientApp/ServerApp a real SuperLink + SuperNodes deployment
runs) on a private simulation SuperLink (``prune/federation.py``; Ray backend, one actor per
CPU, clients processed by whichever actor is free). The ServerApp runs in Flower's simulation
process, so results come back through files: a checkpoint after every round in
``OUT.partial/`` (``resume=True`` picks it up), one JSON line per round in ``rounds.jsonl``
(``on_round``), and the finished directory renamed to ``OUT`` with its ``report.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tinymcu import interrupts
from tinymcu.errors import TinymcuError
from tinymcu.prune import budget, deploy
from tinymcu.prune import data as D
from tinymcu.prune.config import PruneConfig


@dataclass
class PruneResult:
    out: Path
    report: dict

    @property
    def accuracy(self) -> float:
        return self.report["final_accuracy"]

    @property
    def density(self) -> float:
        return self.report["density"]

    @property
    def client_to_server_bytes(self) -> int:
        return self.report["client_to_server_bytes"]

    @property
    def model_json(self) -> Path:
        """``{"factory": "pkg.mod:fn", "kwargs": ..., "state_dict": ..., "torchscript": ...}``."""
        return self.out / "model.json"


def preflight(cfg: PruneConfig) -> budget.SramPlan | None:
    """Fail fast, before any process starts, on bad data, model or output directory, and on
    a model whose planned activations exceed the SRAM budget (:func:`sram_gate`)."""
    cfg.validate()
    ds = D.load(cfg.data)
    if cfg.clients * 2 > len(ds.y):
        raise TinymcuError(f"{len(ds.y)} samples are too few for {cfg.clients} clients")
    out = Path(cfg.out)
    if out.is_file():
        raise TinymcuError(f"output {out} is a file")
    if out.is_dir() and any(out.iterdir()):
        raise TinymcuError(f"output {out} exists and is not empty")
    D.Split(cfg.data, cfg.clients, None if cfg.iid else cfg.alpha, cfg.seed,
            cfg.test_fraction).client(0)
    return sram_gate(cfg)


def sram_gate(cfg: PruneConfig) -> budget.SramPlan | None:
    """Plan the SRAM of the model this run trains (at ``cfg.width``) with the mcu_runtime
    planner; :class:`OverBudget` if neither op-by-op nor a patch schedule fits ``cfg.sram``.
    Without an SRAM budget, only check that the model builds."""
    ds = D.load(cfg.data)
    model = budget.build_at_width(cfg.model, cfg.width, ds.num_classes, ds.input_shape[0],
                                  cfg.seed)
    if not cfg.sram:
        return None
    return budget.check_sram(model, ds.input_shape, cfg.sram)


def check_trains_planned(cfg: PruneConfig, model: torch.nn.Module) -> None:
    """The model the server builds must have the shapes that were planned (same spec, same
    width), or the SRAM plan would describe a different model than the one trained."""
    ds = D.load(cfg.data)
    expect = budget.build_at_width(cfg.model, cfg.width, ds.num_classes, ds.input_shape[0],
                                   cfg.seed)
    if {k: tuple(v.shape) for k, v in model.state_dict().items()} != \
            {k: tuple(v.shape) for k, v in expect.state_dict().items()}:
        raise TinymcuError(f"the model this run would train differs from the planned "
                           f"width-x{cfg.width} model of {cfg.model}")


def record_sram(result: PruneResult, planned: budget.SramPlan, width: float) -> None:
    """Add the planned SRAM to the run's report (``report.json`` replaced atomically)."""
    result.report["sram"] = {**planned.to_dict(), "width": width}
    path = result.out / "report.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result.report, indent=2))
    os.replace(tmp, path)


def federation_options(cfg: PruneConfig) -> dict[str, int | float | bool]:
    """``flwr run --federation-config``: one simulated SuperNode per client, one CPU per client
    actor (more than the machine has makes Ray's pool hang empty), a GPU share if asked."""
    cpus = max(1, min(os.cpu_count() or 1, cfg.clients))
    gpus = 0.0
    if cfg.device in ("auto", "cuda"):
        if torch.cuda.is_available():
            gpus = 1.0 / min(cpus, 4)
    return {"num-supernodes": cfg.clients, "client-resources-num-cpus": 1,
            "client-resources-num-gpus": gpus, "init-args-num-cpus": cpus,
            "init-args-log-to-driver": False}


class _Progress:
    """Tails the JSON lines the ServerApp appends (a round's record, a batch job's end),
    skipping the ones a resumed run's file held already."""

    def __init__(self, *paths: Path) -> None:
        self.paths = paths
        self.seen = len(self._lines())

    def _lines(self) -> list[str]:
        for p in self.paths:
            with contextlib.suppress(OSError):
                text = p.read_text()
                return [ln for ln in text.split("\n")[:-1] if ln]  # a torn last line waits
        return []

    def new(self) -> list[dict]:
        lines = self._lines()
        fresh = [json.loads(ln) for ln in lines[self.seen:]]
        self.seen = len(lines)
        return fresh


def _federate(app_dir: Path, cfg: PruneConfig, poll: Callable[[], bool]) -> str:
    """Run the app on a private simulation federation (``flwr run``); Flower's log tail."""
    from tinymcu.prune.federation import LocalFederation

    # SIGTERM must unwind like Ctrl-C: the federation's processes live in their own sessions
    # and would outlive a process that just dies.
    interrupts.install()
    interrupts.set_note(f"rerun with --resume to continue from {cfg.out}.partial")
    with LocalFederation() as fed:
        fed.run(app_dir, federation_options(cfg), poll)
        return fed.tail()


def _failure(work: Path, log_tail: str) -> TinymcuError:
    """The ServerApp's own one-line error when it wrote one, else Flower's log tail."""
    from tinymcu.prune.apps import ERROR_FILE

    err = work / ERROR_FILE
    if err.exists():
        return TinymcuError(err.read_text().strip())
    return TinymcuError("the federated run did not finish (Flower's log ends:\n"
                        f"{log_tail}\n); rerun with --resume to continue from {work}")


def run_pruning_many(
    configs: list[PruneConfig],
    on_done: Callable[[PruneConfig, dict | None, float, str | None], None],
) -> None:
    """Run many jobs one after another on one simulation federation (benchmarks).

    Starting a federation (SuperLink, simulation process, Ray actors importing torch) costs
    ~20 s; a grid of hundreds of short runs pays it once this way. Each job is exactly what
    :func:`run_pruning` would run (same Server, same ClientApp; clients key their cached masks
    by the job's fingerprint). ``on_done(cfg, report, seconds, error)`` is called after each
    job; a job that fails reports its error and the next one starts.
    """
    if not configs:
        return
    if len({c.clients for c in configs}) != 1:
        raise TinymcuError("every job of one batch needs the same number of clients")
    configs = [dataclasses.replace(c, out=str(Path(c.out).resolve())) for c in configs]
    for cfg in configs:
        preflight(cfg)
    by_out = {c.out: c for c in configs}
    with tempfile.TemporaryDirectory(prefix="tinymcu-batch-") as tmp:
        batch = Path(tmp) / "batch.json"
        batch.write_text(json.dumps([c.flat() for c in configs]))
        done_file = batch.with_suffix(".done.jsonl")
        progress = _Progress(done_file)
        finished: list[str] = []

        def poll() -> bool:
            for rec in progress.new():
                cfg = by_out[rec["out"]]
                report = None
                if rec["error"] is None:
                    report = json.loads((Path(cfg.out) / "report.json").read_text())
                finished.append(cfg.out)
                on_done(cfg, report, float(rec["seconds"]), rec["error"])
            return len(finished) == len(configs)

        app = Path(tmp) / "app"
        deploy.write_app(app, configs[0], jobs=str(batch))
        tail = _federate(app, configs[0], poll)
        if len(finished) < len(configs):
            raise TinymcuError(f"the batch stopped after {len(finished)} of {len(configs)} "
                               f"jobs (Flower's log ends:\n{tail})")


def run_pruning(
    config: PruneConfig | dict,
    on_round: Callable[[dict], None] | None = None,
) -> PruneResult:
    """Run one federated pruning job with ``flwr run`` on a private simulation federation
    and return its report.

    ``on_round`` is called after every round with that round's record (accuracy, loss,
    density, bytes), read from the ``rounds.jsonl`` the ServerApp appends to.
    """
    cfg = config if isinstance(config, PruneConfig) else PruneConfig.from_flat(config)
    cfg = dataclasses.replace(cfg, out=str(Path(cfg.out).resolve()))
    planned = sram_gate(cfg.validate()) if cfg.resume else preflight(cfg)
    from tinymcu.prune.apps import ROUNDS_FILE, Server

    if planned is not None:
        check_trains_planned(cfg, Server(cfg).build(cfg.seed))
    out = Path(cfg.out)
    work = out.with_name(out.name + ".partial")
    progress = _Progress(work / ROUNDS_FILE, out / ROUNDS_FILE)

    def poll() -> bool:
        for rec in progress.new():
            if on_round:
                on_round(rec)
        return (out / "report.json").exists()

    with tempfile.TemporaryDirectory(prefix="tinymcu-app-") as tmp:
        deploy.write_app(Path(tmp), cfg)
        tail = _federate(Path(tmp), cfg, poll)
    if not (out / "report.json").exists():
        raise _failure(work, tail)
    result = PruneResult(out, json.loads((out / "report.json").read_text()))
    if planned is not None:
        record_sram(result, planned, cfg.width)
    return result


def block_tensorflow() -> None:
    """Ray worker setup hook (installed by the simulation launcher, :mod:`.federation`):
    Flower's actor module imports TensorFlow if it is installed, only to offer GPU memory
    growth; pruning never uses TF, and the import costs ~10 s per worker."""
    # a None entry makes `import tensorflow` raise ImportError (the documented way to block a
    # module); typeshed types sys.modules as modules only
    sys.modules.setdefault("tensorflow", None)  # type: ignore[arg-type]
