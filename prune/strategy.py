"""The server strategy: FedAvg over packed sparse updates that survives bad clients.

Flower's FedAvg already averages ArrayRecords by example count; this subclass adds what a
federated pruner needs around it: masks sent to clients, packed (sparse) uploads unpacked after
averaging, FedTiny's top-k gradient reports popped off before FedAvg sees them (FedAvg insists
on one ArrayRecord per reply), and per-client validation so one crashed, silent, NaN-sending or
wrong-shaped client costs the round that client only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from . import fedtiny, wire
from . import masks as M

log = logging.getLogger("tinymcu.prune")

TOPK_KEY = "topk"


def _finite(a: np.ndarray) -> bool:
    return not np.issubdtype(a.dtype, np.floating) or bool(np.isfinite(a).all())


class SparseFedAvg(FedAvg):
    """FedAvg with masks, packed updates, client validation and FedTiny regrowth.

    State lives here between rounds: ``state`` (dense torch state dict), ``masks`` (None for a
    dense model), ``regrow`` (per-layer k requested from clients this round, or empty).
    """

    def __init__(self, state: wire.State, masks: M.Masks | None, min_replies: int) -> None:
        super().__init__(
            fraction_train=1.0,
            fraction_evaluate=1.0,
            min_train_nodes=1,
            min_evaluate_nodes=1,
            min_available_nodes=1,
        )
        self.state = state
        self.masks = masks
        self.min_replies = min_replies
        self.regrow: dict[str, int] = {}
        self.sent: list[int] = []
        self.bytes_up = 0
        self.bytes_down = 0
        self.topk_bytes_up = 0
        self.excluded: list[dict] = []
        self.moved = 0

    # --- training -------------------------------------------------------------------------
    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        config = ConfigRecord(dict(config))
        config["server-round"] = server_round
        if self.regrow:
            config["topk-layers"] = list(self.regrow)
            config["topk-k"] = [int(v) for v in self.regrow.values()]
        content = RecordDict({"arrays": arrays, "config": config})
        if self.masks:
            content["masks"] = wire.masks_to_record(self.masks)
        self.sent = list(grid.get_node_ids())
        self.bytes_down += wire.content_bytes(content) * len(self.sent)
        return [Message(content=content, message_type=MessageType.TRAIN, dst_node_id=n)
                for n in self.sent]

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
        want = wire.expected_shapes(self.state, self.masks)
        arrays = c["arrays"]
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
            rec = c[TOPK_KEY]
            for layer, k in self.regrow.items():
                vals = rec.get(f"{layer}.values")
                idx = rec.get(f"{layer}.indices")
                if vals is None or idx is None:
                    return f"top-k report lacks {layer}"
                v, i = vals.numpy(), idx.numpy()
                numel = self.state[layer].numel()
                if v.shape != i.shape or v.size > k or not _finite(v):
                    return f"bad top-k report for {layer}"
                if i.size and (i.min() < 0 or i.max() >= numel):
                    return f"top-k indices out of range for {layer}"
        return None

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        got = {r.metadata.src_node_id for r in replies}
        for node in self.sent:
            if node not in got:
                self.exclude(server_round, node, "no reply before the timeout (dropped out)")
        valid = []
        for r in replies:
            if not r.has_error():
                self.bytes_up += wire.content_bytes(r.content)
            reason = self.check_reply(r)
            if reason:
                self.exclude(server_round, r.metadata.src_node_id, reason)
            else:
                valid.append(r)
        if len(valid) < self.min_replies:
            log.warning("round %d skipped: %d valid replies, %d needed",
                        server_round, len(valid), self.min_replies)
            self.regrow = {}
            return None, None
        reports = []
        for r in valid:
            if TOPK_KEY in r.content.array_records:
                rec = r.content.array_records.pop(TOPK_KEY)
                self.topk_bytes_up += rec.count_bytes()
                n = float(next(iter(r.content.metric_records.values()))["num-examples"])
                reports.append((rec, n))
        packed, metrics = super().aggregate_train(server_round, valid)
        state = wire.record_to_state(packed, self.state, self.masks)
        if self.regrow and self.masks:
            scores = {
                layer: fedtiny.aggregate_topk(
                    [(rec[f"{layer}.values"].numpy(), rec[f"{layer}.indices"].numpy(), n)
                     for rec, n in reports],
                    tuple(self.state[layer].shape),
                )
                for layer in self.regrow
            }
            state, self.masks, moved = fedtiny.progressive_update(
                state, self.masks, scores, self.regrow)
            self.moved += moved
            log.info("round %d: progressive pruning moved %d weights", server_round, moved)
        self.regrow = {}
        self.state = state
        return wire.state_to_record(state), metrics

    def exclude(self, server_round: int, node: int, reason: str) -> None:
        log.warning("round %d: excluded client %d: %s", server_round, node, reason)
        self.excluded.append({"round": server_round, "node": int(node), "reason": reason})


def topk_memory_bytes(regrow: dict[str, int]) -> int:
    """Client memory held for the top-k report: a float32 value and an int32 index per entry."""
    return 8 * sum(regrow.values())
