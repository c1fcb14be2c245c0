"""Flower apps: one ClientApp for every method, and the server loop behind the ServerApp.

The ClientApp is module-level (``tinymcu.prune.apps:client_app``) and stateless: everything it
needs (model spec, data source, split, hyper-parameters) arrives in each message's ConfigRecord
and the client rebuilds its own partition from it (or reads the files at its node's
``data-path``), so the very same object runs in a simulation federation and on a SuperNode.
Handlers:

- ``train``: masked local SGD, reply with packed weights (+ top-k inactive gradients when asked);
- ``evaluate``: loss/accuracy on local data;
- ``query.bn_stats`` / ``query.bn_loss``: FedTiny's adaptive BatchNorm selection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import warnings
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
from flwr.app.typing import ConfigRecordValues
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from tinymcu.errors import TinymcuError
from tinymcu.prune import budget, fedtiny, local, memory, wire
from tinymcu.prune import data as D
from tinymcu.prune import masks as M
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.modelspec import factory_kwargs, factory_path
from tinymcu.prune.strategy import CLIENT_MASKS_KEY, TOPK_KEY, SparseFedAvg

log = logging.getLogger("tinymcu.prune")

client_app = ClientApp()

ROUNDS_FILE = "rounds.jsonl"
"""One JSON line per finished round, appended by the server (progress for the caller)."""
ERROR_FILE = "error.txt"
"""The server's one-line reason when a run stops early."""


# ----------------------------------------------------------------------------- client side
def _faults(cfg: PruneConfig) -> dict[int, str]:
    """Injected client faults for failure drills: ``extra={"inject_fault": "0:nan,2:crash"}``."""
    spec = cfg.extra.get("inject_fault", "")
    return {int(p): kind for p, kind in (item.split(":") for item in spec.split(",") if item)}


def local_data(cfg: PruneConfig, node_config: dict) -> D.Dataset:
    """This node's training data: the files at its ``data-path`` node-config key (a real
    SuperNode with its own data), else partition ``partition-id`` of ``num-partitions`` of the
    run's data source (simulation, or a loopback drill)."""
    path = node_config.get("data-path")
    if path:
        return D.load(str(path))
    pid = int(node_config.get("partition-id", 0))
    parts = int(node_config.get("num-partitions", cfg.clients))
    return D.Split(cfg.data, parts, None if cfg.iid else cfg.alpha, cfg.seed,
                   cfg.test_fraction).client(pid)


def _client_setup(msg: Message, context: Context):
    # One thread per client: the simulation runs one client per core already, and a fixed
    # thread count keeps torch's CPU reductions in one order (bit-for-bit repeatable runs).
    torch.set_num_threads(1)
    conf = msg.content.config_records["config"]
    cfg = PruneConfig.from_flat(dict(conf))
    pid = int(context.node_config.get("partition-id", -1))
    ds = local_data(cfg, dict(context.node_config))
    model = budget.build_at_width(cfg.model, cfg.width, int(wire.number(conf, "num-classes")),
                                  int(wire.number(conf, "in-ch")), cfg.seed)
    return cfg, conf, pid, ds, model, local.pick_device(cfg.device)


def _reply(msg: Message, records: dict) -> Message:
    return Message(content=RecordDict(records), reply_to=msg)


def _current_masks(msg: Message, conf: ConfigRecord, context: Context,
                   template: wire.State) -> M.Masks | None:
    """The server's masks: from this message when they changed, else this node's cached copy
    (Flower keeps ``context.state`` per node for the whole run)."""
    if not conf.get("masked", False):
        return None
    version = int(wire.number(conf, "mask-version"))
    job = PruneConfig.from_flat(dict(conf)).fingerprint()  # one node may serve many jobs
    if "masks" in msg.content.array_records:
        context.state["masks"] = msg.content.array_records["masks"]
        context.state["mask-meta"] = ConfigRecord({"version": version, "job": job})
    meta = context.state.config_records.get("mask-meta")
    if meta is None or int(wire.number(meta, "version")) != version or meta.get("job") != job:
        raise RuntimeError(f"no cached mask of version {version} on this node")
    return wire.masks_from_record(context.state.array_records["masks"], template)


def _known_growth(context: Context) -> ConfigRecord:
    """This node's measured training growth (bytes above what it holds), one per kind of round:
    model, classes, data shape, batch, epochs, device, masked or not, with a top-k report or
    FedDST's readjust or neither (and the top-k/readjust k it was measured with, ``kind:k``).

    The profiler that measures it costs ~0.3 s per round plus ~3x the training it watches,
    more than everything else a client does. A later round of the same kind repeats the
    measured one's allocations (masks change values, not tensor sizes), so it reuses the
    figure; only a larger k (bigger top-k buffers) than the one measured is profiled again.
    """
    if "train-growth" not in context.state.config_records:
        context.state["train-growth"] = ConfigRecord()
    return context.state.config_records["train-growth"]


@client_app.query("hello")
def client_hello(msg: Message, context: Context) -> Message:
    """Tell the server this node's partition id (its rank in every ordered reduction)."""
    cfg, _, pid, ds, _, _ = _client_setup(msg, context)
    return _reply(msg, {"metrics": MetricRecord({"partition-id": pid,
                                                 "num-examples": len(ds.y)})})


@client_app.train()
def client_train(msg: Message, context: Context) -> Message:
    cfg, conf, pid, ds, model, device = _client_setup(msg, context)
    fault = _faults(cfg).get(pid)
    if fault == "crash":
        raise RuntimeError(f"injected crash on client {pid}")
    template = model.state_dict()
    masks = _current_masks(msg, conf, context, template)
    topk = dict(zip(wire.strings(conf, "topk-layers"), wire.numbers(conf, "topk-k"),
                    strict=True))
    readjust = dict(zip(wire.strings(conf, "readjust-layers"), wire.numbers(conf, "readjust-k"),
                        strict=True))
    rnd = int(wire.number(conf, "server-round", 0))
    held = memory.nbytes([*template.values(), *(masks or {}).values(), ds.x, ds.y])
    kind = (f"{cfg.model}:{cfg.width}:{int(wire.number(conf, 'num-classes'))}:"
            f"{tuple(ds.x.shape)}:{cfg.batch}:{cfg.epochs}:{device}:"
            f"{int(masks is not None)}:{int(bool(topk))}:{int(bool(readjust))}")
    buffers = int(sum(topk.values()) + sum(readjust.values()))
    known = _known_growth(context)
    fresh = kind not in known or buffers > wire.number(known, kind + ":k")
    with memory.measure(held) if fresh else contextlib.nullcontext(None) as mem:
        received = msg.content.array_records["arrays"]
        model.load_state_dict(wire.record_to_state(received, template, masks))
        res = local.train(
            model, ds.x, ds.y, masks, epochs=cfg.epochs, lr=cfg.round_lr(max(rnd, 1)),
            batch=cfg.batch, seed=cfg.seed * 100003 + rnd * 1009 + pid, device=device,
            topk={k: int(v) for k, v in topk.items()} or None,
            readjust={k: int(v) for k, v in readjust.items()} or None)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        out_masks = res.masks or masks
        arrays = wire.state_to_record(state, out_masks)
    if fault == "nan":
        first = wire.exchanged(state)[0]
        state[first] = torch.full_like(state[first], float("nan"))
        arrays = wire.state_to_record(state, out_masks)
    if fault == "shape":
        arrays = wire.state_to_record({k: v[..., :1] if v.dim() else v for k, v in state.items()})
    if mem is not None:
        known[kind], known[kind + ":k"] = mem.growth, buffers
    records = {"arrays": arrays,
               "metrics": MetricRecord({"train-loss": res.loss, "num-examples": len(ds.y),
                                        "peak-bytes": held + int(wire.number(known, kind))})}
    if res.topk:
        records[TOPK_KEY] = ArrayRecord(array_dict={
            f"{layer}.{part}": Array(a) for layer, (vals, idx) in res.topk.items()
            for part, a in (("values", vals), ("indices", idx))})
    if res.masks is not None:
        records[CLIENT_MASKS_KEY] = wire.masks_to_record(res.masks)
    return _reply(msg, records)


@client_app.evaluate()
def client_evaluate(msg: Message, context: Context) -> Message:
    cfg, _, _, ds, model, device = _client_setup(msg, context)
    arrays = msg.content.array_records["arrays"]
    model.load_state_dict(wire.record_to_state(arrays, model.state_dict()))
    loss, acc = local.evaluate(model, ds.x, ds.y, device)
    return _reply(msg, {"metrics": MetricRecord(
        {"eval-loss": loss, "eval-acc": acc, "num-examples": len(ds.y)})})


def _rebuilt_candidates(cfg: PruneConfig, conf: ConfigRecord) -> list[wire.State]:
    """The server's ABNS candidates, rebuilt here from their seeds (only seeds travel)."""
    def build(seed: int) -> torch.nn.Module:
        return budget.build_at_width(cfg.model, cfg.width, int(wire.number(conf, "num-classes")),
                                     int(wire.number(conf, "in-ch")), seed)

    seeds = [int(v) for v in wire.numbers(conf, "cand-seeds")]
    return [s for s, _ in fedtiny.make_candidates(build, cfg.density, seeds)]


@client_app.query("bn_stats")
def client_bn_stats(msg: Message, context: Context) -> Message:
    cfg, conf, _, ds, model, device = _client_setup(msg, context)
    records: dict = {}
    for i, state in enumerate(_rebuilt_candidates(cfg, conf)):
        model.load_state_dict(state)
        stats = local.bn_statistics(model, ds.x, device)
        records[f"bn-{i}"] = ArrayRecord(array_dict={k: Array(v) for k, v in stats.items()})
    records["metrics"] = MetricRecord({"num-examples": len(ds.y)})
    return _reply(msg, records)


@client_app.query("bn_loss")
def client_bn_loss(msg: Message, context: Context) -> Message:
    cfg, conf, _, ds, model, device = _client_setup(msg, context)
    metrics: dict = {"num-examples": len(ds.y)}
    for i, state in enumerate(_rebuilt_candidates(cfg, conf)):
        model.load_state_dict(state)
        stats = msg.content.array_records[f"bn-{i}"]
        local.set_bn_statistics(model, {k: v.numpy() for k, v in stats.items()})
        metrics[f"loss-{i}"] = local.evaluate(model, ds.x, ds.y, device)[0]
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

    def __init__(self, cfg: PruneConfig) -> None:
        self.cfg = cfg.validate()
        self.out = Path(cfg.out)
        self.work = self.out.with_name(self.out.name + ".partial")
        full = D.load(cfg.data)
        self.num_classes, self.in_ch = full.num_classes, full.input_shape[0]
        self.input_shape = full.input_shape
        split = D.Split(cfg.data, cfg.clients, None if cfg.iid else cfg.alpha, cfg.seed,
                        cfg.test_fraction)
        self.test = split.test()
        self.device = local.pick_device(cfg.device)
        self.schedule = fedtiny.Schedule.scaled(cfg.rounds, cfg.prune_alpha, cfg.delta_t,
                                                cfg.t_end)
        # Clients build the model from these, so a node with its own files needs no dataset.
        self.conf: dict[str, ConfigRecordValues] = {
            **cfg.flat(), "num-classes": self.num_classes, "in-ch": self.in_ch}

    def build(self, seed: int) -> torch.nn.Module:
        return budget.build_at_width(self.cfg.model, self.cfg.width, self.num_classes, self.in_ch,
                                     seed)

    # -- queries (hello, FedTiny adaptive BN selection)
    def _query(self, grid: Grid, nodes: list[int], action: str, content: RecordDict,
               strategy: SparseFedAvg, needed: int) -> list[Message]:
        msgs = [Message(content=content, message_type=f"{MessageType.QUERY}.{action}",
                        dst_node_id=n) for n in nodes]
        strategy.bytes_down += wire.content_bytes(content) * len(nodes)
        replies = strategy.ordered(grid.send_and_receive(msgs, timeout=self.cfg.timeout))
        good = []
        for r in replies:
            if r.has_error():
                strategy.exclude(0, r.metadata.src_node_id, f"{action}: {r.error.reason}")
                continue
            strategy.bytes_up += wire.content_bytes(r.content)
            finite = all(_all_finite(rec) for rec in r.content.array_records.values())
            metrics = next(iter(r.content.metric_records.values()), MetricRecord())
            if not finite or not all(np.isfinite(v) for v in metrics.values()):
                strategy.exclude(0, r.metadata.src_node_id, f"{action}: non-finite reply")
                continue
            good.append(r)
        if len(good) < needed:
            raise TinymcuError(f"{action}: {len(good)} usable replies, {needed} needed")
        return good

    def hello(self, grid: Grid, nodes: list[int], strategy: SparseFedAvg) -> None:
        """Learn each node's partition id: the rank every ordered reduction and sample uses."""
        content = RecordDict({"config": ConfigRecord(self.conf)})
        for r in self._query(grid, nodes, "hello", content, strategy, 1):
            pid = int(wire.number(next(iter(r.content.metric_records.values())), "partition-id"))
            if pid >= 0:
                strategy.rank[r.metadata.src_node_id] = pid

    def select(self, grid: Grid, nodes: list[int], strategy: SparseFedAvg) -> dict:
        """FedTiny's adaptive BN selection; candidates travel as seeds, pooled BN moments as
        the only arrays."""
        seeds = [self.cfg.seed * 1000 + i for i in range(self.cfg.candidates)]
        cands = fedtiny.make_candidates(self.build, self.cfg.density, seeds)
        if len(cands) == 1:
            state, mk = cands[0]
            return {"state": state, "masks": mk, "selection": None}
        conf = ConfigRecord({**self.conf, "cand-seeds": seeds})
        nodes = strategy.sample(0, nodes)
        needed = min(self.cfg.needed_replies, len(nodes))
        replies = self._query(grid, nodes, "bn_stats", RecordDict({"config": conf}), strategy,
                              needed)
        pooled, stats = [], {}
        for i, (state, mk) in enumerate(cands):
            reports = [({k: v.numpy() for k, v in r.content.array_records[f"bn-{i}"].items()},
                        float(wire.number(next(iter(r.content.metric_records.values())),
                                          "num-examples")))
                       for r in replies]
            stats[f"bn-{i}"] = fedtiny.pool_moments(reports)
            model = self.build(seeds[i])
            model.load_state_dict(state)
            local.set_bn_statistics(model, stats[f"bn-{i}"])
            pooled.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, mk))
        content = RecordDict({k: ArrayRecord(array_dict={n: Array(a) for n, a in v.items()})
                              for k, v in stats.items()})
        content["config"] = conf
        replies = self._query(grid, nodes, "bn_loss", content, strategy, needed)
        losses = []
        for r in replies:
            m = next(iter(r.content.metric_records.values()))
            losses.append(([float(wire.number(m, f"loss-{i}")) for i in range(len(pooled))],
                           float(wire.number(m, "num-examples"))))
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
    _COUNTERS = ("bytes_up", "bytes_down", "topk_bytes_up", "mask_bytes_down",
                 "client_peak_bytes", "excluded", "moved", "mask_version")

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
                  "history": [], "selection": None, "elapsed": 0.0, "started": False,
                  "bytes_up": 0, "bytes_down": 0, "topk_bytes_up": 0, "mask_bytes_down": 0,
                  "client_peak_bytes": 0, "excluded": [], "moved": 0, "mask_version": 0}
        else:
            log.info("resuming %s after round %d", self.work, ck["round"])
        strategy = SparseFedAvg(ck["state"], ck["masks"], cfg.needed_replies,
                                fraction_train=cfg.fraction, min_train_nodes=cfg.min_train_nodes,
                                seed=cfg.seed)
        for k in self._COUNTERS:
            setattr(strategy, k, ck[k])
        self.hello(grid, nodes, strategy)
        if cfg.method in ("fedtiny", "feddst") and not ck["started"]:
            sel = self.select(grid, nodes, strategy) if cfg.method == "fedtiny" else \
                self.select_single(strategy)
            strategy.state = sel["state"]
            strategy.set_masks(sel["masks"])
            ck["selection"] = sel["selection"]
        ck["started"] = True
        dense_rounds = cfg.dense_rounds or cfg.rounds // 2
        train_conf = ConfigRecord(self.conf)
        for t in range(ck["round"] + 1, cfg.rounds + 1):
            if self.schedule.is_update(t) and strategy.masks:
                counts = M.regrow_counts(strategy.masks, self.schedule.alpha, t,
                                         self.schedule.t_end)
                if cfg.method == "fedtiny" and cfg.regrow:
                    strategy.regrow = counts
                elif cfg.method == "feddst":
                    strategy.readjust = counts
            train_conf["masked"] = bool(strategy.masks)
            msgs = strategy.configure_train(t, ArrayRecord(), train_conf, grid)
            replies = grid.send_and_receive(msgs, timeout=cfg.timeout)
            _, train_metrics = strategy.aggregate_train(t, replies)
            if cfg.method in ("globalmp", "erkmp") and t == dense_rounds:
                self._one_shot_prune(strategy)
            fed_eval = None
            if cfg.eval_clients:
                ev = strategy.configure_evaluate(t, ArrayRecord(), ConfigRecord(self.conf), grid)
                fed_eval = strategy.aggregate_evaluate(
                    t, grid.send_and_receive(ev, timeout=cfg.timeout))
            model = self.build(cfg.seed)
            model.load_state_dict(strategy.state)
            loss, acc = local.evaluate(model, self.test.x, self.test.y, self.device)
            rec = {"round": t, "test_acc": acc, "test_loss": loss,
                   "density": M.density(strategy.masks) if strategy.masks else 1.0,
                   "train_loss": float(wire.number(train_metrics, "train-loss"))
                   if train_metrics else None,
                   "client_acc": float(wire.number(fed_eval, "eval-acc")) if fed_eval else None,
                   "clients": int(wire.number(train_metrics, "replies")) if train_metrics else 0,
                   "examples": int(wire.number(train_metrics, "num-examples"))
                   if train_metrics else 0,
                   "client_peak_bytes": int(wire.number(train_metrics, "peak-bytes"))
                   if train_metrics else 0,
                   "bytes_up": strategy.bytes_up, "bytes_down": strategy.bytes_down,
                   "skipped": train_metrics is None}
            ck.update(round=t, state=strategy.state, masks=strategy.masks,
                      elapsed=ck["elapsed"] + time.monotonic() - t0,
                      **{k: getattr(strategy, k) for k in self._COUNTERS})
            t0 = time.monotonic()
            ck["history"].append(rec)
            self.save_checkpoint(ck)
            with (self.work / ROUNDS_FILE).open("a") as f:
                f.write(json.dumps(rec) + "\n")
            if t == int(cfg.extra.get("stop_after_round", 0)):
                raise TinymcuError(f"stopped after round {t} (stop_after_round drill)")
        return self.finish(ck)

    def select_single(self, strategy: SparseFedAvg) -> dict:
        """FedDST's start: the seed's ERK magnitude mask at initialisation (no selection)."""
        (state, mk), = fedtiny.make_candidates(self.build, self.cfg.density, [self.cfg.seed])
        return {"state": state, "masks": mk, "selection": None}

    def _one_shot_prune(self, strategy: SparseFedAvg) -> None:
        """globalmp: one threshold with a per-layer floor; erkmp: per-layer magnitude at ERK
        densities. Both after the dense rounds, then fine-tuned under the fixed mask."""
        model = self.build(self.cfg.seed)
        names = M.prunable_names(model)
        weights = {n: strategy.state[n] for n in names}
        if self.cfg.method == "globalmp":
            masks = M.global_magnitude_masks(weights, self.cfg.density, self.cfg.floor)
        else:
            dens = M.erk_densities({n: tuple(w.shape) for n, w in weights.items()},
                                   self.cfg.density)
            masks = M.magnitude_masks(weights, dens)
        strategy.set_masks(masks)
        strategy.state = dict(strategy.state)
        for n, m in masks.items():
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
            "mask_download_bytes": ck["mask_bytes_down"],
            "client_peak_bytes": ck["client_peak_bytes"],
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


server_app = ServerApp()


@server_app.main()
def deployed_main(grid: Grid, context: Context) -> None:
    """``flwr run`` entry point: settings come from the app's ``[tool.flwr.app.config]``.

    With a ``jobs`` key (a JSON file of flat configs, :func:`tinymcu.prune.run.run_pruning_many`)
    the jobs run in turn on the same nodes, one JSON line each in ``<jobs>.done.jsonl``."""
    run_config = dict(context.run_config)
    jobs = str(run_config.get("jobs", ""))
    if not jobs:
        cfg = PruneConfig.from_flat(run_config)
        try:
            Server(cfg).run(grid)
        except TinymcuError as e:  # the caller shows this one line, not Flower's traceback
            work = Path(cfg.out).with_name(Path(cfg.out).name + ".partial")
            work.mkdir(parents=True, exist_ok=True)
            (work / ERROR_FILE).write_text(str(e) + "\n")
            raise
        return
    done = Path(jobs).with_suffix(".done.jsonl")
    for flat in json.loads(Path(jobs).read_text()):
        cfg = PruneConfig.from_flat(flat)
        t0 = time.monotonic()
        error = None
        try:
            Server(cfg).run(grid)
        except (TinymcuError, RuntimeError, ValueError) as e:
            error = str(e) or type(e).__name__
        with done.open("a") as f:
            f.write(json.dumps({"out": cfg.out, "seconds": time.monotonic() - t0,
                                "error": error}) + "\n")
