"""The server strategy: deterministic FedAvg over packed sparse updates that survives bad clients.

Flower's FedAvg samples nodes with Python's ``random`` over node ids (which the simulation draws
at random) and sums replies in arrival order, so the same seed does not reproduce. This subclass
keeps FedAvg's knobs (``fraction_train``, ``min_train_nodes``) but

- orders every node by a stable rank (its partition id, learned once from each node's
  ``query.hello`` reply; the node id where a node has none) and samples with a generator seeded
  by (run seed, round);
- aggregates in float64 in that fixed order, one tensor at a time, so a run is bit-for-bit
  repeatable whatever order the replies arrive in;
- sends each node its weights packed (only the active values) and the mask bits only when the
  node has not yet seen the current mask version (clients cache it in their Flower context);
- pops FedTiny's top-k gradient reports and FedDST's client masks off the replies, and
  validates every reply so one crashed, silent, NaN-sending or wrong-shaped client costs the
  round that client only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from tinymcu.prune import fedtiny, wire
from tinymcu.prune import masks as M

log = logging.getLogger("tinymcu.prune")

TOPK_KEY = "topk"
CLIENT_MASKS_KEY = "client-masks"


def _finite(a: np.ndarray) -> bool:
    return not np.issubdtype(a.dtype, np.floating) or bool(np.isfinite(a).all())


def _num_examples(msg: Message) -> float:
    return float(wire.number(next(iter(msg.content.metric_records.values())), "num-examples"))


def _arrays(msg: Message) -> ArrayRecord:
    """The model arrays of a (validated) reply."""
    return msg.content.array_records["arrays"]


def weighted_mean(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Σ wᵢ·vᵢ / Σ wᵢ in float64, summed in the given order (the caller fixes the order)."""
    total = math.fsum(weights)
    acc = np.zeros(vectors[0].shape, np.float64)
    for v, w in zip(vectors, weights, strict=True):
        acc += v.astype(np.float64) * (w / total)
    return acc


class SparseFedAvg(FedAvg):
    """FedAvg with masks, packed updates, client validation, FedTiny regrowth and FedDST mask
    aggregation.

    State lives here between rounds: ``state`` (dense torch state dict), ``masks`` (None for a
    dense model), ``regrow`` (per-layer k of the top-k report asked from clients this round),
    ``readjust`` (per-layer k of FedDST's client-side prune/regrow this round).
    """

    def __init__(self, state: wire.State, masks: M.Masks | None, min_replies: int, *,
                 fraction_train: float = 1.0, min_train_nodes: int = 1, seed: int = 0) -> None:
        super().__init__(
            fraction_train=fraction_train,
            fraction_evaluate=1.0,
            min_train_nodes=min_train_nodes,
            min_evaluate_nodes=1,
            min_available_nodes=1,
        )
        self.state = state
        self.masks = masks
        self.min_replies = min_replies
        self.seed = seed
        self.regrow: dict[str, int] = {}
        self.readjust: dict[str, int] = {}
        self.rank: dict[int, int] = {}
        self.mask_version = 0
        self.node_mask_version: dict[int, int] = {}
        self.sent: list[int] = []
        self.bytes_up = 0
        self.bytes_down = 0
        self.topk_bytes_up = 0
        self.mask_bytes_down = 0
        self.client_peak_bytes = 0
        self.excluded: list[dict] = []
        self.moved = 0

    # --- ordering and sampling ------------------------------------------------------------
    def order_key(self, node: int) -> tuple[int, int]:
        return (self.rank.get(node, 2**62), node)

    def ordered(self, replies: Iterable[Message]) -> list[Message]:
        return sorted(replies, key=lambda r: self.order_key(r.metadata.src_node_id))

    def sample(self, server_round: int, nodes: Iterable[int]) -> list[int]:
        """FedAvg's sample size (⌊fraction·available⌋, at least ``min_train_nodes``), drawn by a
        generator seeded with (seed, round) over the nodes in rank order."""
        ranked = sorted(nodes, key=self.order_key)
        n = min(len(ranked), max(int(len(ranked) * self.fraction_train), self.min_train_nodes))
        if n >= len(ranked):
            return ranked
        rng = np.random.default_rng([self.seed, server_round])
        return [ranked[i] for i in sorted(rng.choice(len(ranked), n, replace=False).tolist())]

    def set_masks(self, masks: M.Masks) -> None:
        """New masks: every node gets the bits again with its next message."""
        self.masks = masks
        self.mask_version += 1

    # --- training -------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """``arrays`` is ignored: each node gets the current state, packed under the mask."""
        config = ConfigRecord(dict(config))
        config["server-round"] = server_round
        config["mask-version"] = self.mask_version
        if self.regrow:
            config["topk-layers"] = list(self.regrow)
            config["topk-k"] = [int(v) for v in self.regrow.values()]
        if self.readjust:
            config["readjust-layers"] = list(self.readjust)
            config["readjust-k"] = [int(v) for v in self.readjust.values()]
        packed = wire.state_to_record(self.state, self.masks)
        mask_rec = wire.masks_to_record(self.masks) if self.masks else None
        self.sent = self.sample(server_round, grid.get_node_ids())
        msgs = []
        for n in self.sent:
            content = RecordDict({"arrays": packed, "config": config})
            if mask_rec is not None and self.node_mask_version.get(n) != self.mask_version:
                content["masks"] = mask_rec
                self.mask_bytes_down += mask_rec.count_bytes()
                self.node_mask_version[n] = self.mask_version
            self.bytes_down += wire.content_bytes(content)
            msgs.append(Message(content=content, message_type=MessageType.TRAIN, dst_node_id=n))
        return msgs

    def check_reply(self, msg: Message) -> str | None:
        """Why a reply must be excluded, or None if it is usable."""
        if msg.has_error():
            return f"client error: {msg.error.reason}"
        c = msg.content
        if "arrays" not in c.array_records or len(c.metric_records) != 1:
            return "reply lacks its arrays or metrics"
        metrics = next(iter(c.metric_records.values()))
        n = metrics.get("num-examples", 0)
        if not isinstance(n, (int, float)) or not np.isfinite(n) or n <= 0:
            return f"bad num-examples {n!r}"
        masks = self.masks
        if self.readjust and self.masks:
            if CLIENT_MASKS_KEY not in c.array_records:
                return "missing the client's readjusted masks"
            try:
                masks = wire.masks_from_record(c.array_records[CLIENT_MASKS_KEY], self.state)
            except (KeyError, ValueError) as e:
                return f"bad client masks ({e})"
            if set(masks) != set(self.masks) or any(
                    int(masks[k].sum()) != int(self.masks[k].sum()) for k in masks):
                return "client masks change a layer's density"
        want = wire.expected_shapes(self.state, masks)
        arrays = c.array_records["arrays"]
        if set(arrays) != set(want):
            return f"unexpected array keys ({len(arrays)} vs {len(want)} expected)"
        for k, shape in want.items():
            a = arrays[k].numpy()
            if tuple(a.shape) != shape:
                return f"wrong shape for {k}: {tuple(a.shape)} != {shape}"
            if not _finite(a):
                return f"non-finite values in {k}"
        if self.regrow:
            if TOPK_KEY not in c.array_records:
                return "missing top-k gradient report"
            rec = c.array_records[TOPK_KEY]
            for layer, count in self.regrow.items():
                vals = rec.get(f"{layer}.values")
                idx = rec.get(f"{layer}.indices")
                if vals is None or idx is None:
                    return f"top-k report lacks {layer}"
                v, i = vals.numpy(), idx.numpy()
                numel = self.state[layer].numel()
                if v.shape != i.shape or v.size > count or not _finite(v):
                    return f"bad top-k report for {layer}"
                if i.size and (i.min() < 0 or i.max() >= numel):
                    return f"top-k indices out of range for {layer}"
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = self.ordered(replies)
        got = {r.metadata.src_node_id for r in replies}
        for node in sorted(self.sent, key=self.order_key):
            if node not in got:
                self.exclude(server_round, node, "no reply before the timeout (dropped out)")
                self.node_mask_version.pop(node, None)
        valid = []
        for r in replies:
            if not r.has_error():
                self.bytes_up += wire.content_bytes(r.content)
            reason = self.check_reply(r)
            if reason:
                self.exclude(server_round, r.metadata.src_node_id, reason)
                if r.has_error():  # e.g. a restarted node without the cached mask
                    self.node_mask_version.pop(r.metadata.src_node_id, None)
            else:
                valid.append(r)
        needed = min(self.min_replies, len(self.sent)) if self.sent else self.min_replies
        if len(valid) < max(1, needed):
            log.warning("round %d skipped: %d valid replies, %d needed",
                        server_round, len(valid), needed)
            self.regrow, self.readjust = {}, {}
            return None, None
        weights = [_num_examples(r) for r in valid]
        metrics = self._metrics(valid, weights)
        if self.readjust and self.masks:
            state = self._aggregate_feddst(valid, weights)
        else:
            state = self._aggregate_shared_mask(valid, weights)
        if self.regrow and self.masks:
            state = self._regrow(server_round, state, valid, weights)
        self.regrow, self.readjust = {}, {}
        self.state = state
        return wire.state_to_record(state), metrics

    def _metrics(self, valid: list[Message], weights: list[float]) -> MetricRecord:
        ms = [next(iter(r.content.metric_records.values())) for r in valid]
        peak = max(int(wire.number(m, "peak-bytes", 0)) for m in ms)
        self.client_peak_bytes = max(self.client_peak_bytes, peak)
        loss = float(weighted_mean([np.asarray(wire.number(m, "train-loss"), np.float64)
                                    for m in ms], weights))
        return MetricRecord({"train-loss": loss, "num-examples": math.fsum(weights),
                             "replies": len(valid), "peak-bytes": peak})

    def _aggregate_shared_mask(self, valid: list[Message], weights: list[float]) -> wire.State:
        """Every client trained under the server's mask: the mean of packed vectors is the
        packed mean, unpacked once."""
        out = dict(self.state)
        for k in wire.exchanged(self.state):
            mean = weighted_mean([_arrays(r)[k].numpy() for r in valid], weights)
            t = torch.from_numpy(mean.astype(np.float32)).to(self.state[k].dtype)
            if self.masks and k in self.masks:
                t = M.unpack(t, self.masks[k])
            out[k] = t.view(self.state[k].shape)
        return out

    def _aggregate_feddst(self, valid: list[Message], weights: list[float]) -> wire.State:
        """FedDST: clients return their own masks; each weight is averaged over the clients that
        hold it (by examples), then every layer is magnitude re-pruned to its fixed count."""
        client_masks = [wire.masks_from_record(r.content.array_records[CLIENT_MASKS_KEY],
                                                self.state)
                        for r in valid]
        for r in valid:
            r.content.array_records.pop(CLIENT_MASKS_KEY)
        assert self.masks is not None
        out = dict(self.state)
        new_masks: M.Masks = {}
        for k in wire.exchanged(self.state):
            if k not in self.masks:
                mean = weighted_mean([_arrays(r)[k].numpy() for r in valid], weights)
                out[k] = torch.from_numpy(mean.astype(np.float32)).view(self.state[k].shape)
                continue
            shape, numel = self.state[k].shape, self.state[k].numel()
            num = np.zeros(numel, np.float64)
            den = np.zeros(numel, np.float64)
            for r, m, w in zip(valid, client_masks, weights, strict=True):
                flat = m[k].flatten().numpy()
                num[flat] += _arrays(r)[k].numpy().astype(np.float64) * w
                den[flat] += w
            held = den > 0
            mean = np.where(held, num / np.where(held, den, 1.0), 0.0)
            # Re-prune by magnitude among held positions; ties go to the more widely held.
            score = torch.from_numpy(np.where(held, np.abs(mean) + 1e-12 * den, -1.0))
            mask = M.topk_mask(score, int(self.masks[k].sum())).view(shape)
            new_masks[k] = mask
            out[k] = torch.from_numpy(mean.astype(np.float32)).view(shape) * mask
        moved = sum(int((new_masks[k] & ~self.masks[k]).sum()) for k in new_masks)
        self.moved += moved
        if moved:
            self.set_masks(new_masks)
        return out

    def _regrow(self, server_round: int, state: wire.State, valid: list[Message],
                weights: list[float]) -> wire.State:
        """FedTiny's progressive pruning from the clients' top-k reports (in rank order)."""
        assert self.masks is not None
        reports = []
        for r, w in zip(valid, weights, strict=True):
            rec = r.content.array_records.pop(TOPK_KEY)
            self.topk_bytes_up += rec.count_bytes()
            reports.append((rec, w))
        scores = {
            layer: fedtiny.aggregate_topk(
                [(rec[f"{layer}.values"].numpy(), rec[f"{layer}.indices"].numpy(), n)
                 for rec, n in reports],
                tuple(self.state[layer].shape),
            )
            for layer in self.regrow
        }
        state, masks, moved = fedtiny.progressive_update(state, self.masks, scores, self.regrow)
        self.moved += moved
        if moved:
            self.set_masks(masks)
        log.info("round %d: progressive pruning moved %d weights", server_round, moved)
        return state

    # --- evaluation -----------------------------------------------------------------------
    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Every node, dense weights (evaluation is optional and off in the benchmark)."""
        content = RecordDict({"arrays": wire.state_to_record(self.state), "config": config})
        nodes = sorted(grid.get_node_ids(), key=self.order_key)
        self.bytes_down += wire.content_bytes(content) * len(nodes)
        return [Message(content=content, message_type=MessageType.EVALUATE, dst_node_id=n)
                for n in nodes]

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        return super().aggregate_evaluate(server_round, self.ordered(replies))

    def exclude(self, server_round: int, node: int, reason: str) -> None:
        log.warning("round %d: excluded client %d: %s", server_round, node, reason)
        self.excluded.append({"round": server_round, "node": int(node),
                              "rank": self.rank.get(node), "reason": reason})
