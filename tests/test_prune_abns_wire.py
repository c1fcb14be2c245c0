"""FedTiny's adaptive BN selection on the wire: the K candidates travel as seeds (clients rebuild
them), the only arrays sent down are the pooled BN moments — never a model."""

import pytest
import torch
from flwr.app import Context, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tinymcu.prune import apps, fedtiny, wire
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.strategy import SparseFedAvg

HANDLERS = {"query.hello": apps.client_hello, "query.bn_stats": apps.client_bn_stats,
            "query.bn_loss": apps.client_bn_loss}


@pytest.fixture(autouse=True)
def _identity():
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1


class _LoopGrid:
    """Hands each message to the real client handler of its node, in this process."""

    def __init__(self, clients: int) -> None:
        self.ctx = {100 + 7 * i: Context(run_id=1, node_id=100 + 7 * i,
                                         node_config={"partition-id": i,
                                                      "num-partitions": clients},
                                         state=RecordDict(), run_config={})
                    for i in range(clients)}
        self.sent = []

    def get_node_ids(self):
        return list(self.ctx)

    def send_and_receive(self, msgs, timeout=None):
        replies = []
        for m in msgs:
            self.sent.append(m)
            replies.append(HANDLERS[m.metadata.message_type](m, self.ctx[m.metadata.dst_node_id]))
        return replies


def test_candidates_travel_as_seeds_and_only_pooled_moments_come_down(tmp_path):
    cfg = PruneConfig(clients=3, density=0.1, candidates=3, out=str(tmp_path / "o"))
    server = apps.Server(cfg)
    grid = _LoopGrid(cfg.clients)
    strat = SparseFedAvg(server.build(cfg.seed).state_dict(), None, 1)
    nodes = sorted(grid.get_node_ids())
    server.hello(grid, nodes, strat)
    assert strat.rank == {n: i for i, n in enumerate(nodes)}
    down_before = strat.bytes_down
    sel = server.select(grid, nodes, strat)

    model_bytes = sum(t.numel() * t.element_size() for t in server.build(0).state_dict().values())
    stats = [m for m in grid.sent if m.metadata.message_type == "query.bn_stats"]
    loss = [m for m in grid.sent if m.metadata.message_type == "query.bn_loss"]
    assert len(stats) == len(loss) == cfg.clients
    for m in stats:  # seeds only: no arrays at all
        assert not m.content.array_records
        assert list(m.content["config"]["cand-seeds"]) == [0, 1, 2]
    for m in loss:  # per candidate: the pooled BN moments, nothing else
        assert set(m.content.array_records) == {f"bn-{i}" for i in range(cfg.candidates)}
        for rec in m.content.array_records.values():
            assert all(k.endswith((".mean", ".sqmean")) for k in rec)
    per_node = (strat.bytes_down - down_before) / cfg.clients
    assert per_node < model_bytes / 4  # config + moments; K full models: K × model_bytes
    # The client-rebuilt candidates are the server's: same masks, same weights.
    seeds = list(stats[0].content["config"]["cand-seeds"])
    rebuilt = apps._rebuilt_candidates(cfg, stats[0].content["config"])
    ours = fedtiny.make_candidates(server.build, cfg.density, seeds)
    for s_c, (s_s, m_s) in zip(rebuilt, ours, strict=True):
        assert all(torch.equal(s_c[k], s_s[k]) for k in wire.exchanged(s_s))
        assert all(bool((s_c[k][~m] == 0).all()) for k, m in m_s.items())
    chosen = sel["selection"]["chosen"]
    assert all(torch.equal(sel["masks"][k], ours[chosen][1][k]) for k in sel["masks"])
