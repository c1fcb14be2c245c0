"""The server strategy on hand-made Flower replies: averaging packed sparse updates, excluding
bad clients, and popping FedTiny's top-k reports before FedAvg sees them."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Error, Message, MessageType, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tinymcu.prune import masks as M
from tinymcu.prune import wire, zoo
from tinymcu.prune.strategy import SparseFedAvg


@pytest.fixture(autouse=True)
def _identity():
    # Replies need a run/task identity, as inside a running ServerApp.
    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1


def _setup(density=0.3):
    model = zoo.build("demo_cnn")
    state = model.state_dict()
    names = M.prunable_names(model)
    masks = M.magnitude_masks({n: state[n] for n in names}, {n: density for n in names})
    for n, m in masks.items():
        state[n] = state[n] * m
    return state, masks


def _reply(node, state, masks, n, topk=None):
    req = Message(content=RecordDict(), message_type=MessageType.TRAIN, dst_node_id=node)
    content = {"arrays": wire.state_to_record(state, masks),
               "metrics": MetricRecord({"num-examples": n, "train-loss": 1.0})}
    if topk is not None:
        content["topk"] = topk
    return Message(content=RecordDict(content), reply_to=req)


def _scaled(state, masks, f):
    return {k: (v * f if v.is_floating_point() else v) for k, v in state.items()}


def test_packed_average_equals_dense_average_and_bad_clients_are_excluded(caplog):
    state, masks = _setup()
    strat = SparseFedAvg(state, masks, min_replies=2)
    strat.sent = [1, 2, 3, 4, 5, 6]
    good1, good2 = _scaled(state, masks, 1.0), _scaled(state, masks, 3.0)
    nan = _scaled(state, masks, 1.0)
    first = wire.exchanged(nan)[0]
    nan[first] = torch.full_like(nan[first], float("nan"))
    req = Message(content=RecordDict(), message_type=MessageType.TRAIN, dst_node_id=4)
    crashed = Message(Error(code=0, reason="boom"), reply_to=req)
    wrong = _reply(5, state, None, 10)  # dense upload where packed was expected
    replies = [_reply(1, good1, masks, 10), _reply(2, good2, masks, 30), _reply(3, nan, masks, 10),
               crashed, wrong]  # node 6 never answers
    with caplog.at_level("WARNING", logger="tinymcu.prune"):
        arrays, metrics = strat.aggregate_train(1, replies)
    assert arrays is not None and metrics["train-loss"] == pytest.approx(1.0)
    reasons = [e["reason"] for e in strat.excluded]
    assert len(reasons) == 4 and any("non-finite" in r for r in reasons)
    assert any("wrong shape" in r for r in reasons) and any("boom" in r for r in reasons)
    assert any("dropped out" in r for r in reasons)
    assert "excluded client 3" in caplog.text
    out = wire.record_to_state(arrays, state)
    for k in wire.exchanged(state):
        torch.testing.assert_close(out[k], state[k] * 2.5)  # (1·10 + 3·30) / 40
    assert all(bool((out[n][~m] == 0).all()) for n, m in masks.items())


def test_round_is_skipped_when_too_few_clients_remain():
    state, masks = _setup()
    strat = SparseFedAvg(state, masks, min_replies=2)
    strat.sent = [1, 2]
    assert strat.aggregate_train(1, [_reply(1, state, masks, 5)]) == (None, None)
    assert torch.equal(strat.state[wire.exchanged(state)[0]], state[wire.exchanged(state)[0]])


def test_topk_reports_are_popped_and_regrow_keeps_density():
    state, masks = _setup()
    strat = SparseFedAvg(state, masks, min_replies=1)
    strat.sent = [1, 2]
    layer = next(iter(masks))
    k = 5
    strat.regrow = {n: (k if n == layer else 0) for n in masks}
    inactive = torch.nonzero(~masks[layer].flatten()).flatten()[:k].numpy().astype(np.int32)
    topk = {}
    for n in masks:
        idx = inactive if n == layer else np.zeros(0, np.int32)
        topk[f"{n}.values"] = Array(np.ones(len(idx), np.float32))
        topk[f"{n}.indices"] = Array(idx)
    replies = [_reply(1, state, masks, 10, ArrayRecord(array_dict=dict(topk))),
               _reply(2, state, masks, 10, ArrayRecord(array_dict=dict(topk)))]
    arrays, _ = strat.aggregate_train(3, replies)
    assert arrays is not None and strat.moved == k
    assert int(strat.masks[layer].sum()) == int(masks[layer].sum())
    assert bool(strat.masks[layer].flatten()[torch.from_numpy(inactive).long()].all())
    assert strat.topk_bytes_up > 0 and strat.regrow == {}


def test_missing_topk_report_excludes_the_client():
    state, masks = _setup()
    strat = SparseFedAvg(state, masks, min_replies=1)
    strat.sent = [1]
    strat.regrow = {n: 1 for n in masks}
    assert strat.aggregate_train(2, [_reply(1, state, masks, 10)]) == (None, None)
    assert "top-k" in strat.excluded[0]["reason"]


def _noisy(state, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: (v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v)
            for k, v in state.items()}


def test_aggregation_is_bit_identical_whatever_order_replies_arrive_in():
    state, masks = _setup()
    results = []
    for perm in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):
        strat = SparseFedAvg(state, masks, min_replies=1)
        strat.rank = {10 + i: i for i in range(4)}
        strat.sent = [10, 11, 12, 13]
        replies = [_reply(10 + i, _noisy(state, i), masks, 7 + 3 * i) for i in range(4)]
        strat.aggregate_train(1, [replies[i] for i in perm])
        results.append(strat.state)
    for other in results[1:]:
        assert all(torch.equal(results[0][k], other[k]) for k in state)


class _Grid:
    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return list(self.nodes)


def test_sampling_follows_fraction_and_min_nodes_and_is_seeded_by_rank():
    state, masks = _setup()
    strat = SparseFedAvg(state, masks, 1, fraction_train=0.25, min_train_nodes=2, seed=3)
    strat.rank = {n: i for i, n in enumerate([91, 17, 55, 3, 70, 12, 8, 40])}
    picks = [strat.sample(r, strat.rank) for r in range(1, 6)]
    assert all(len(p) == 2 and len(set(p)) == 2 for p in picks)  # max(⌊0.25·8⌋, 2)
    assert len({tuple(p) for p in picks}) > 1  # a new draw every round
    # Same ranks under different node ids: the same partitions are drawn.
    other = SparseFedAvg(state, masks, 1, fraction_train=0.25, min_train_nodes=2, seed=3)
    other.rank = {n + 1000: i for n, i in strat.rank.items()}
    assert [[strat.rank[n] for n in p] for p in picks] == \
        [[other.rank[n] for n in other.sample(r, other.rank)] for r in range(1, 6)]
    assert strat.sample(1, strat.rank) == picks[0]
    full = SparseFedAvg(state, masks, 1, fraction_train=1.0)
    assert sorted(full.sample(1, [5, 4, 9])) == [4, 5, 9]


def test_masks_travel_only_to_nodes_that_lack_the_current_version():
    from flwr.app import ConfigRecord

    state, masks = _setup()
    strat = SparseFedAvg(state, masks, 1)
    grid = _Grid([1, 2])
    first = list(strat.configure_train(1, ArrayRecord(), ConfigRecord({}), grid))
    assert all("masks" in m.content.array_records for m in first)
    again = list(strat.configure_train(2, ArrayRecord(), ConfigRecord({}), grid))
    assert not any("masks" in m.content.array_records for m in again)
    # weights travel packed: only the active values
    layer = next(iter(masks))
    assert again[0].content["arrays"][layer].numpy().size == int(masks[layer].sum())
    strat.set_masks({k: v.clone() for k, v in masks.items()})
    grid.nodes.append(3)
    third = list(strat.configure_train(3, ArrayRecord(), ConfigRecord({}), grid))
    assert all("masks" in m.content.array_records for m in third)
    assert third[0].content["config"]["mask-version"] == 1


def test_feddst_averages_each_weight_over_its_holders_and_reprunes_to_the_count():
    from tinymcu.prune.strategy import CLIENT_MASKS_KEY

    state, masks = _setup(0.3)
    layer = next(iter(masks))
    strat = SparseFedAvg(state, masks, min_replies=1)
    strat.rank = {1: 0, 2: 1}
    strat.sent = [1, 2]
    strat.readjust = {n: 1 for n in masks}
    m2 = {k: v.clone() for k, v in masks.items()}
    flat = m2[layer].flatten()
    on, off = int(torch.nonzero(flat)[0]), int(torch.nonzero(~flat)[0])
    flat[on], flat[off] = False, True  # client 2 moved one weight
    s1 = {k: v.clone() for k, v in state.items()}
    s2 = {k: v.clone() for k, v in state.items()}
    s2[layer].view(-1)[off] = 100.0  # a big grown weight: must survive the re-prune
    replies = []
    for node, s, m in ((1, s1, masks), (2, s2, m2)):
        r = _reply(node, s, m, 10)
        r.content[CLIENT_MASKS_KEY] = wire.masks_to_record(m)
        replies.append(r)
    strat.aggregate_train(2, replies)
    new = strat.masks[layer]
    assert int(new.sum()) == int(masks[layer].sum())
    assert bool(new.view(-1)[off])
    assert float(strat.state[layer].view(-1)[off]) == pytest.approx(100.0)  # held by one
    assert strat.mask_version == 1 and strat.moved >= 1
    for k, m in strat.masks.items():
        assert bool((strat.state[k][~m] == 0).all())
