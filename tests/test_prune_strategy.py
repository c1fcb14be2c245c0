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
