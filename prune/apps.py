"""Flower apps: one ClientApp for every method, and the server loop behind the ServerApp.

The ClientApp is module-level (``tinymcu.prune.apps:client_app``) and stateless: everything it
needs (model spec, data source, split, hyper-parameters) arrives in each message's ConfigRecord
and the client rebuilds its own partition from it, so the very same object runs in
``run_simulation`` and on a SuperNode. Handlers:

- ``train``: masked local SGD, reply with packed weights (+ top-k inactive gradients when asked);
- ``evaluate``: loss/accuracy on local data;
- ``query.bn_stats`` / ``query.bn_loss``: FedTiny's adaptive BatchNorm selection.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MessageType,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from tinymcu.errors import TinymcuError

from . import budget, fedtiny, local, wire
from . import data as D
from . import masks as M
from .config import PruneConfig
from .modelspec import factory_kwargs, factory_path
from .strategy import SparseFedAvg, topk_memory_bytes

log = logging.getLogger("tinymcu.prune")

client_app = ClientApp()


# ----------------------------------------------------------------------------- client side
def _faults(cfg: PruneConfig) -> dict[int, str]:
    """Injected client faults for failure drills: ``extra={"inject_fault": "0:nan,2:crash"}``."""
    spec = cfg.extra.get("inject_fault", "")
    return {int(p): kind for p, kind in (item.split(":") for item in spec.split(",") if item)}


def _client_setup(msg: Message, context: Context):
    # One thread per client: the simulation runs one client per core already.
    torch.set_num_threads(1)
    conf = msg.content["config"]
    cfg = PruneConfig.from_flat(dict(conf))
    pid = int(context.node_config.get("partition-id", 0))
    parts = int(context.node_config.get("num-partitions", cfg.clients))
    split = D.Split(cfg.data, parts, None if cfg.iid else cfg.alpha, cfg.seed, cfg.test_fraction)
    full = D.load(cfg.data)
    model = budget.build_at_width(cfg.model, cfg.width, full.num_classes, full.input_shape[0],
                                  cfg.seed)
    return cfg, conf, pid, split.client(pid), model, local.pick_device(cfg.device)


def _reply(msg: Message, records: dict) -> Message:
    return Message(content=RecordDict(records), reply_to=msg)


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    cfg, conf, pid, ds, model, device = _client_setup(msg, context)
    fault = _faults(cfg).get(pid)
    if fault == "crash":
        raise RuntimeError(f"injected crash on client {pid}")
    template = model.state_dict()
    masks = (wire.masks_from_record(msg.content["masks"], template)
             if "masks" in msg.content.array_records else None)
    model.load_state_dict(wire.record_to_state(msg.content["arrays"], template))
    regrow = dict(zip(conf.get("topk-layers", []), conf.get("topk-k", []), strict=True))
    rnd = int(conf.get("server-round", 0))
    loss, grads = local.train(
        model, ds.x, ds.y, masks, epochs=cfg.epochs, lr=cfg.round_lr(max(rnd, 1)), batch=cfg.batch,
        seed=cfg.seed * 100003 + rnd * 1009 + pid, device=device, collect_grads=bool(regrow))
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    if fault == "nan":
        first = wire.exchanged(state)[0]
        state[first] = torch.full_like(state[first], float("nan"))
    arrays = wire.state_to_record(state, masks)
    if fault == "shape":
        arrays = wire.state_to_record({k: v[..., :1] if v.dim() else v for k, v in state.items()})
    records = {"arrays": arrays,
               "metrics": MetricRecord({"train-loss": loss, "num-examples": len(ds.y)})}
    if regrow:
        topk = {}
        for layer, k in regrow.items():
            vals, idx = fedtiny.topk_inactive(grads[layer], masks[layer], int(k))
            topk[f"{layer}.values"] = Array(vals)
            topk[f"{layer}.indices"] = Array(idx)
        records["topk"] = ArrayRecord(array_dict=topk)
    return _reply(msg, records)


@client_app.evaluate()
def client_evaluate(msg: Message, context: Context) -> Message:
    cfg, _, _, ds, model, device = _client_setup(msg, context)
    model.load_state_dict(wire.record_to_state(msg.content["arrays"], model.state_dict()))
    loss, acc = local.evaluate(model, ds.x, ds.y, device)
    return _reply(msg, {"metrics": MetricRecord(
        {"eval-loss": loss, "eval-acc": acc, "num-examples": len(ds.y)})})


def _candidates(msg: Message) -> list[str]:
    keys = [k for k in msg.content.array_records if k.startswith("cand-")]
    return sorted(keys, key=lambda k: int(k.split("-")[1]))


@client_app.query("bn_stats")
def client_bn_stats(msg: Message, context: Context) -> Message:
    _, _, _, ds, model, device = _client_setup(msg, context)
    template = model.state_dict()
    records: dict = {}
    for key in _candidates(msg):
        model.load_state_dict(wire.record_to_state(msg.content[key], template))
        stats = local.bn_statistics(model, ds.x, device)
        records["bn-" + key.split("-")[1]] = ArrayRecord(
            array_dict={k: Array(v) for k, v in stats.items()})
    records["metrics"] = MetricRecord({"num-examples": len(ds.y)})
    return _reply(msg, records)


@client_app.query("bn_loss")
def client_bn_loss(msg: Message, context: Context) -> Message:
    _, _, _, ds, model, device = _client_setup(msg, context)
    template = model.state_dict()
    metrics: dict = {"num-examples": len(ds.y)}
    for key in _candidates(msg):
        model.load_state_dict(wire.record_to_state(msg.content[key], template))
        metrics["loss-" + key.split("-")[1]] = local.evaluate(model, ds.x, ds.y, device)[0]
    return _reply(msg, {"metrics": MetricRecord(metrics)})


# ----------------------------------------------------------------------------- server side
def _wait_for_nodes(grid: Grid, n: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < n:
        if time.monotonic() > deadline:
            raise TinymcuError(f"only {len(nodes)} of {n} clients connected within {timeout:.0f} s")
        time.sleep(0.5)
    return sorted(nodes)


class Server:
    """The federated run: selection (FedTiny), the training rounds, checkpoints, outputs."""

    def __init__(self, cfg: PruneConfig, on_round: Callable[[dict], None] | None = None) -> None:
        self.cfg = cfg.validate()
        self.on_round = on_round
        self.out = Path(cfg.out)
        self.work = self.out.with_name(self.out.name + ".partial")
        full = D.load(cfg.data)
        self.num_classes, self.in_ch = full.num_classes, full.input_shape[0]
        self.input_shape = full.input_shape
        split = D.Split(cfg.data, cfg.clients, None if cfg.iid else cfg.alpha, cfg.seed,
                        cfg.test_fraction)
        self.test = split.test()
        self.device = local.pick_device(cfg.device)
        self.schedule = (fedtiny.Schedule(cfg.prune_alpha, cfg.delta_t, cfg.t_end or cfg.rounds)
                         if cfg.delta_t else fedtiny.Schedule.scaled(cfg.rounds, cfg.prune_alpha))

    def build(self, seed: int) -> torch.nn.Module:
        return budget.build_at_width(self.cfg.model, self.cfg.width, self.num_classes, self.in_ch,
                                     seed)

    # -- FedTiny adaptive BN selection
    def _query(self, grid: Grid, nodes: list[int], action: str, content: RecordDict,
               strategy: SparseFedAvg) -> list[Message]:
        msgs = [Message(content=content, message_type=f"{MessageType.QUERY}.{action}",
                        dst_node_id=n) for n in nodes]
        strategy.bytes_down += wire.content_bytes(content) * len(nodes)
        replies = list(grid.send_and_receive(msgs, timeout=self.cfg.timeout))
        good = []
        for r in replies:
            if r.has_error():
                strategy.exclude(0, r.metadata.src_node_id, f"{action}: {r.error.reason}")
                continue
            strategy.bytes_up += wire.content_bytes(r.content)
            finite = all(_all_finite(rec) for rec in r.content.array_records.values())
            metrics = next(iter(r.content.metric_records.values()), {})
            if not finite or not all(np.isfinite(v) for v in metrics.values()):
                strategy.exclude(0, r.metadata.src_node_id, f"{action}: non-finite reply")
                continue
            good.append(r)
        if len(good) < self.cfg.needed_replies:
            raise TinymcuError(f"BN selection: {len(good)} usable replies to {action}, "
                               f"{self.cfg.needed_replies} needed")
        return good

    def select(self, grid: Grid, nodes: list[int], strategy: SparseFedAvg) -> dict:
        seeds = [self.cfg.seed * 1000 + i for i in range(self.cfg.candidates)]
        cands = fedtiny.make_candidates(self.build, self.cfg.density, seeds)
        conf = ConfigRecord(self.cfg.flat())
        content = RecordDict({f"cand-{i}": wire.state_to_record(s)
                              for i, (s, _) in enumerate(cands)})
        content["config"] = conf
        replies = self._query(grid, nodes, "bn_stats", content, strategy)
        pooled = []
        for i, (state, mk) in enumerate(cands):
            reports = [({k: v.numpy() for k, v in r.content[f"bn-{i}"].items()},
                        float(next(iter(r.content.metric_records.values()))["num-examples"]))
                       for r in replies]
            model = self.build(seeds[i])
            model.load_state_dict(state)
            local.set_bn_statistics(model, fedtiny.pool_moments(reports))
            pooled.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, mk))
        content = RecordDict({f"cand-{i}": wire.state_to_record(s)
                              for i, (s, _) in enumerate(pooled)})
        content["config"] = conf
        replies = self._query(grid, nodes, "bn_loss", content, strategy)
        losses = []
        for r in replies:
            m = next(iter(r.content.metric_records.values()))
            losses.append(([float(m[f"loss-{i}"]) for i in range(len(pooled))],
                           float(m["num-examples"])))
        best, agg = fedtiny.select_candidate(losses)
        state, mk = pooled[best]
        log.info("BN selection: candidate %d of %d (losses %s)", best, len(pooled),
                 ", ".join(f"{v:.3f}" for v in agg))
        return {"state": state, "masks": mk, "selection": {"chosen": best, "losses": agg}}

    # -- checkpoints
    def _ckpt_path(self) -> Path:
        return self.work / "checkpoint.pt"

    def save_checkpoint(self, ck: dict) -> None:
        tmp = self._ckpt_path().with_suffix(".tmp")
        torch.save(ck, tmp)
        os.replace(tmp, self._ckpt_path())

    def load_checkpoint(self) -> dict | None:
        if not (self.cfg.resume and self._ckpt_path().exists()):
            return None
        ck = torch.load(self._ckpt_path(), weights_only=False)
        if ck["fingerprint"] != self.cfg.fingerprint():
            raise TinymcuError(f"{self._ckpt_path()} was made with different settings; "
                               "rerun without --resume or with the original settings")
        return ck

    # -- the run
    def run(self, grid: Grid) -> dict:
        cfg = self.cfg
        if self.out.exists() and (self.out.is_file() or any(self.out.iterdir())):
            raise TinymcuError(f"output {self.out} exists and is not empty")
        self.work.mkdir(parents=True, exist_ok=True)
        ck = self.load_checkpoint()
        nodes = _wait_for_nodes(grid, cfg.clients, cfg.timeout)
        t0 = time.monotonic()
        if ck is None:
            state = {k: v.detach().clone() for k, v in self.build(cfg.seed).state_dict().items()}
            ck = {"fingerprint": cfg.fingerprint(), "round": 0, "state": state, "masks": None,
                  "history": [], "bytes_up": 0, "bytes_down": 0, "topk_bytes_up": 0,
                  "excluded": [], "moved": 0, "topk_client_bytes": 0, "selection": None,
                  "elapsed": 0.0}
        else:
            log.info("resuming %s after round %d", self.work, ck["round"])
        strategy = SparseFedAvg(ck["state"], ck["masks"], cfg.needed_replies)
        strategy.bytes_up, strategy.bytes_down = ck["bytes_up"], ck["bytes_down"]
        strategy.topk_bytes_up, strategy.excluded = ck["topk_bytes_up"], ck["excluded"]
        strategy.moved = ck["moved"]
        if cfg.method == "fedtiny" and ck["round"] == 0 and ck["selection"] is None:
            sel = self.select(grid, nodes, strategy)
            strategy.state, strategy.masks = sel["state"], sel["masks"]
            ck["selection"] = sel["selection"]
        dense_rounds = cfg.dense_rounds or cfg.rounds // 2
        train_conf = ConfigRecord(cfg.flat())
        for t in range(ck["round"] + 1, cfg.rounds + 1):
            if cfg.method == "fedtiny" and self.schedule.is_update(t):
                strategy.regrow = M.regrow_counts(strategy.masks, self.schedule.alpha, t,
                                                  self.schedule.t_end)
                ck["topk_client_bytes"] = max(ck["topk_client_bytes"],
                                              topk_memory_bytes(strategy.regrow))
            msgs = strategy.configure_train(t, wire.state_to_record(strategy.state),
                                            train_conf, grid)
            replies = grid.send_and_receive(msgs, timeout=cfg.timeout)
            _, train_metrics = strategy.aggregate_train(t, replies)
            if cfg.method == "globalmp" and t == dense_rounds:
                self._global_prune(strategy)
            fed_eval = None
            if cfg.eval_clients:
                ev = strategy.configure_evaluate(t, wire.state_to_record(strategy.state),
                                                 ConfigRecord(cfg.flat()), grid)
                fed_eval = strategy.aggregate_evaluate(
                    t, grid.send_and_receive(ev, timeout=cfg.timeout))
            model = self.build(cfg.seed)
            model.load_state_dict(strategy.state)
            loss, acc = local.evaluate(model, self.test.x, self.test.y, self.device)
            rec = {"round": t, "test_acc": acc, "test_loss": loss,
                   "density": M.density(strategy.masks) if strategy.masks else 1.0,
                   "train_loss": float(train_metrics["train-loss"]) if train_metrics else None,
                   "client_acc": float(fed_eval["eval-acc"]) if fed_eval else None,
                   "bytes_up": strategy.bytes_up, "skipped": train_metrics is None}
            ck.update(round=t, state=strategy.state, masks=strategy.masks,
                      bytes_up=strategy.bytes_up, bytes_down=strategy.bytes_down,
                      topk_bytes_up=strategy.topk_bytes_up, excluded=strategy.excluded,
                      moved=strategy.moved, elapsed=ck["elapsed"] + time.monotonic() - t0)
            t0 = time.monotonic()
            ck["history"].append(rec)
            self.save_checkpoint(ck)
            if self.on_round:
                self.on_round(rec)
        return self.finish(ck)

    def _global_prune(self, strategy: SparseFedAvg) -> None:
        model = self.build(self.cfg.seed)
        names = M.prunable_names(model)
        strategy.masks = M.global_magnitude_masks({n: strategy.state[n] for n in names},
                                                  self.cfg.density)
        strategy.state = dict(strategy.state)
        for n, m in strategy.masks.items():
            strategy.state[n] = strategy.state[n] * m

    def finish(self, ck: dict) -> dict:
        """Write the model (state dict + factory spec, TorchScript), masks and the report, then
        move the finished directory into place."""
        cfg = self.cfg
        model = self.build(cfg.seed)
        model.load_state_dict(ck["state"])
        model.eval()
        torch.save(model.state_dict(), self.work / "model_state.pt")
        if ck["masks"]:
            torch.save(ck["masks"], self.work / "masks.pt")
        example = torch.from_numpy(self.test.x[:1])
        with warnings.catch_warnings():  # TorchScript is deprecated but is what export reads
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.trace(model, example).save(str(self.work / "model.ts"))
        spec = {"factory": factory_path(cfg.model),
                "kwargs": {**factory_kwargs(cfg.model, self.num_classes, self.in_ch),
                           **budget.width_kwargs(cfg.model, cfg.width)},
                "state_dict": "model_state.pt", "torchscript": "model.ts",
                "input_shape": [1, *self.input_shape], "num_classes": self.num_classes}
        (self.work / "model.json").write_text(json.dumps(spec, indent=2))
        masks = ck["masks"] or {n: torch.ones_like(ck["state"][n], dtype=torch.bool)
                                for n in M.prunable_names(model)}
        hist = ck["history"]
        report = {
            "schema": "tinymcu.prune.report/1",
            "config": cfg.flat(),
            "final_accuracy": hist[-1]["test_acc"] if hist else None,
            "density": M.density(masks),
            "layer_density": M.layer_densities(masks),
            "layer_params": {n: int(m.numel()) for n, m in masks.items()},
            "rounds": hist,
            "client_to_server_bytes": ck["bytes_up"],
            "server_to_client_bytes": ck["bytes_down"],
            "topk_upload_bytes": ck["topk_bytes_up"],
            "topk_client_memory_bytes": ck["topk_client_bytes"],
            "weights_moved_by_regrowth": ck["moved"],
            "selection": ck["selection"],
            "excluded_clients": ck["excluded"],
            "train_seconds": ck["elapsed"],
            "model": spec,
        }
        (self.work / "report.json").write_text(json.dumps(report, indent=2))
        self._ckpt_path().unlink(missing_ok=True)
        if self.out.exists():
            shutil.rmtree(self.out) if self.out.is_dir() else self.out.unlink()
        os.replace(self.work, self.out)
        return report


def _all_finite(rec: ArrayRecord) -> bool:
    return all(np.isfinite(a.numpy()).all() for a in rec.values()
               if np.issubdtype(a.numpy().dtype, np.floating))


def make_server_app(cfg: PruneConfig, sink: dict | None = None,
                    on_round: Callable[[dict], None] | None = None) -> ServerApp:
    """A ServerApp bound to ``cfg`` (simulation); the report lands in ``sink["report"]``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        report = Server(cfg, on_round).run(grid)
        if sink is not None:
            sink["report"] = report

    return app


server_app = ServerApp()


@server_app.main()
def deployed_main(grid: Grid, context: Context) -> None:
    """``flwr run`` entry point: settings come from the app's ``[tool.flwr.app.config]``."""
    Server(PruneConfig.from_flat(dict(context.run_config))).run(grid)
