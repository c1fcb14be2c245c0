"""Client memory is measured from torch's allocator events, not computed from sizes."""

import numpy as np
import torch

from tinymcu.prune import local, memory, zoo


def test_measured_peak_sees_a_transient_allocation():
    with memory.measure(resident=1000) as m:
        a = torch.zeros(250_000)  # 1 MB, freed before the block ends
        del a
        b = torch.zeros(10)
    assert 1_000_000 <= m.growth < 1_100_000 and m.peak == m.growth + 1000
    assert b.numel() == 10


def test_training_peak_grows_with_the_batch():
    x = np.random.default_rng(0).random((256, 1, 28, 28), dtype=np.float32)
    y = np.arange(256) % 10
    peaks = []
    for batch in (8, 128):
        model = zoo.build("small_cnn")
        with memory.measure() as m:
            local.train(model, x, y, None, epochs=1, lr=0.01, batch=batch, seed=0,
                        device=torch.device("cpu"))
        peaks.append(m.peak)
    assert 0 < peaks[0] < peaks[1]  # activations for backward scale with the batch


def _train_message(cfg, state, masks, rnd, topk=None):
    """The server's train message for one node: packed weights, masks, the flat config."""
    from flwr.app import ConfigRecord, Message, MessageType, RecordDict

    from tinymcu.prune import wire

    conf = {**cfg.flat(), "num-classes": 10, "in-ch": 1, "server-round": rnd,
            "mask-version": 1, "masked": True}
    if topk:
        conf["topk-layers"], conf["topk-k"] = list(topk), list(topk.values())
    return Message(content=RecordDict({"arrays": wire.state_to_record(state, masks),
                                       "masks": wire.masks_to_record(masks),
                                       "config": ConfigRecord(conf)}),
                   message_type=MessageType.TRAIN, dst_node_id=1)


def test_a_client_profiles_each_kind_of_round_once_and_reports_that_peak(monkeypatch):
    from flwr.app import Context, RecordDict
    from flwr.supercore.task_identity import TaskIdentity

    from tinymcu.prune import apps, budget, fedtiny
    from tinymcu.prune.config import PruneConfig

    TaskIdentity.run_id, TaskIdentity.task_id, TaskIdentity.node_id = 1, 1, 1
    profiled = []
    real = memory.measure

    def counting(resident=0):
        profiled.append(resident)
        return real(resident)

    monkeypatch.setattr(memory, "measure", counting)
    cfg = PruneConfig(clients=4, density=0.2, epochs=1, out="unused")
    (state, masks), = fedtiny.make_candidates(
        lambda s: budget.build_at_width(cfg.model, 1.0, 10, 1, s), cfg.density, [0])
    ctx = Context(run_id=1, node_id=1, node_config={"partition-id": 0, "num-partitions": 4},
                  state=RecordDict(), run_config={})

    def peak(rnd, topk=None):
        reply = apps.client_train(_train_message(cfg, state, masks, rnd, topk), ctx)
        return int(next(iter(reply.content.metric_records.values()))["peak-bytes"])

    first = peak(1)
    assert len(profiled) == 1 and first > profiled[0]  # held tensors plus measured growth
    assert peak(2) == first and len(profiled) == 1  # same kind of round: not profiled again
    layer = next(iter(masks))
    with_topk = peak(3, {layer: 8})
    assert len(profiled) == 2 and with_topk > 0  # a top-k round is its own kind
    peak(4, {layer: 4})
    assert len(profiled) == 2  # smaller top-k buffers than the measured round's
    peak(5, {layer: 64})
    assert len(profiled) == 3  # larger ones are measured again
