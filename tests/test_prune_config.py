"""Run settings survive the trip through Flower's config records and a ``flwr run`` app."""

import pytest

from tinymcu.errors import TinymcuError
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.deploy import write_app


def test_flat_roundtrip_and_fingerprint():
    cfg = PruneConfig(clients=7, alpha=0.0, density=0.05, extra={"inject_fault": "1:nan"})
    back = PruneConfig.from_flat(cfg.flat() | {"server-round": 3, "topk-k": [1, 2]})
    assert back == cfg and back.iid
    assert cfg.fingerprint() == PruneConfig(clients=7, alpha=0.0, density=0.05, out="elsewhere",
                                            extra={"inject_fault": "1:nan"}).fingerprint()
    assert cfg.fingerprint() != PruneConfig(clients=7, density=0.05).fingerprint()


def test_flower_app_config_parses_back(tmp_path):
    cfg = PruneConfig(method="globalmp", rounds=4, density=0.2, out=str(tmp_path / "o"))
    path = write_app(tmp_path / "app", cfg)
    tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
    doc = tomllib.loads(path.read_text())
    assert doc["tool"]["flwr"]["app"]["components"]["clientapp"] == "tinymcu.prune.apps:client_app"
    assert PruneConfig.from_flat(doc["tool"]["flwr"]["app"]["config"]) == cfg


@pytest.mark.parametrize("kw", [{"method": "magic"}, {"density": 0.0}, {"rounds": 0},
                                {"method": "globalmp", "rounds": 1}])
def test_invalid_settings(kw):
    with pytest.raises(TinymcuError):
        PruneConfig(**kw).validate()


def test_cosine_learning_rate_decays_to_a_twentieth():
    cfg = PruneConfig(lr=0.1, rounds=10)
    lrs = [cfg.round_lr(t) for t in range(1, 11)]
    assert lrs[0] == pytest.approx(0.1) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] > 0.005 and PruneConfig(lr_schedule="constant").round_lr(7) == 0.05


def test_partial_participation_follows_fedavgs_rule():
    cfg = PruneConfig(clients=20, fraction=0.25, min_train_nodes=2)
    assert cfg.sampled == 5 and cfg.needed_replies == 2
    assert PruneConfig(clients=20, fraction=0.05, min_train_nodes=3).sampled == 3
    for kw in ({"fraction": 0.0}, {"fraction": 1.5}, {"min_train_nodes": 0}):
        with pytest.raises(TinymcuError):
            PruneConfig(**kw).validate()
