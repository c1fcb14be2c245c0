"""Public entry point: ``run_pruning(config) -> PruneResult``.

Runs the federated job in Flower's simulation runtime (``flwr.simulation.run_simulation``, Ray
backend: one actor per CPU, clients processed by whichever actor is free), with the same
ClientApp and server loop a real deployment uses (``prune/deploy.py`` shows the SuperLink /
SuperNode way). The server writes a checkpoint after every round into ``OUT.partial/``;
``resume=True`` picks it up; the finished directory is renamed to ``OUT`` at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from tinymcu.errors import TinymcuError

from . import budget
from . import data as D
from .config import PruneConfig


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


def backend_config(cfg: PruneConfig, ray_tmp: str) -> dict:
    """One CPU per client actor (more than the machine has makes Ray's pool hang empty)."""
    cpus = max(1, min(os.cpu_count() or 1, cfg.clients))
    gpus = 0.0
    if cfg.device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            gpus = 1.0 / min(cpus, 4)
    return {
        "client_resources": {"num_cpus": 1, "num_gpus": gpus},
        "init_args": {"num_cpus": cpus, "_temp_dir": ray_tmp, "include_dashboard": False,
                      "logging_level": logging.ERROR, "log_to_driver": False},
    }


def run_pruning(
    config: PruneConfig | dict,
    on_round: Callable[[dict], None] | None = None,
    keep_backend: bool = False,
) -> PruneResult:
    """Run one federated pruning job in simulation and return its report.

    ``on_round`` is called after every round with that round's record (accuracy, loss,
    density, bytes). ``keep_backend`` leaves Ray running for the next call (benchmarks).
    """
    cfg = config if isinstance(config, PruneConfig) else PruneConfig.from_flat(config)
    planned = sram_gate(cfg.validate()) if cfg.resume else preflight(cfg)
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    with _without_tensorflow():
        from flwr.simulation import run_simulation

    from .apps import Server, client_app, make_server_app

    if planned is not None:
        check_trains_planned(cfg, Server(cfg).build(cfg.seed))

    ray_tmp = _ray_tmp()
    sink: dict = {}
    try:
        _init_ray(backend_config(cfg, ray_tmp))
        run_simulation(server_app=make_server_app(cfg, sink, on_round), client_app=client_app,
                       num_supernodes=cfg.clients, backend_config=backend_config(cfg, ray_tmp))
    finally:
        if not keep_backend:
            shutdown_backend()
    if "report" not in sink:
        raise TinymcuError("the federated run did not finish (see the Flower log above); "
                           f"rerun with --resume to continue from {cfg.out}.partial")
    result = PruneResult(Path(cfg.out), sink["report"])
    if planned is not None:
        record_sram(result, planned, cfg.width)
    return result


_RAY_TMP: list[str] = []


def block_tensorflow() -> None:
    """Ray worker setup hook: Flower's actor module imports TensorFlow if it is installed, only
    to offer GPU memory growth; pruning never uses TF, and the import costs ~10 s per worker."""
    sys.modules.setdefault("tensorflow", None)  # type: ignore[assignment]


@contextlib.contextmanager
def _without_tensorflow():
    """Import Flower's simulation modules without dragging TensorFlow in (see above), leaving
    TensorFlow importable afterwards for whoever needs it (the exporter)."""
    if "tensorflow" in sys.modules:
        yield
        return
    sys.modules["tensorflow"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules["tensorflow"]


def _init_ray(bcfg: dict) -> None:
    """Start Ray ourselves (Flower skips its own ray.init when Ray is up) to add the TF-blocking
    worker hook; same PYTHONPATH propagation as Flower's."""
    import ray

    if ray.is_initialized():
        return
    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    ray.init(runtime_env={"env_vars": {"PYTHONPATH": pythonpath},
                          "worker_process_setup_hook": "tinymcu.prune.run.block_tensorflow"},
             **bcfg["init_args"])


def _ray_tmp() -> str:
    """A short private temp dir for Ray's sessions (unix socket paths must stay < 108 chars)."""
    if not _RAY_TMP:
        _RAY_TMP.append(tempfile.mkdtemp(prefix="tmray", dir="/tmp"))
    return _RAY_TMP[0]


def shutdown_backend() -> None:
    """Stop Ray and delete its session folders."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    while _RAY_TMP:
        shutil.rmtree(_RAY_TMP.pop(), ignore_errors=True)
