"""The real thing through ``flwr run`` on a simulation federation (Ray): FedTiny with a faulty
client, stopped mid-run and resumed, and the exported model reloads from its factory spec."""

import importlib
import json

import pytest
import torch

from tinymcu.errors import TinymcuError
from tinymcu.prune import data as D
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.run import run_pruning

pytestmark = pytest.mark.slow


def test_fedtiny_survives_a_nan_client_and_resumes_after_a_kill(tmp_path):
    out = tmp_path / "run"
    cfg = PruneConfig(clients=3, rounds=3, density=0.2, out=str(out), candidates=2,
                      delta_t=1, t_end=3, min_clients=2, timeout=120,
                      extra={"inject_fault": "1:nan", "stop_after_round": "2"})
    seen_first = []
    with pytest.raises(TinymcuError, match="stopped after round 2"):
        run_pruning(cfg, on_round=lambda rec: seen_first.append(rec["round"]))
    assert seen_first == [1, 2]
    ck = torch.load(tmp_path / "run.partial" / "checkpoint.pt", weights_only=False)
    assert ck["round"] == 2 and not out.exists()

    cfg.resume = True
    cfg.extra = {"inject_fault": "1:nan"}  # same fingerprint: the drill key does not count
    seen = []
    result = run_pruning(cfg, on_round=lambda rec: seen.append(rec["round"]))
    rep = result.report
    assert seen == [3]  # only the missing round ran
    assert [r["round"] for r in rep["rounds"]] == [1, 2, 3]
    assert rep["rounds"][:2] == ck["history"]
    # client 1 sends NaN every round: excluded with a reason, rounds still went on with 2
    bad = [e for e in rep["excluded_clients"] if "non-finite" in e["reason"]]
    assert len(bad) == 3 and not any(r["skipped"] for r in rep["rounds"])
    assert abs(rep["density"] - 0.2) < 0.01
    assert rep["selection"]["chosen"] in (0, 1) and rep["topk_upload_bytes"] > 0
    assert rep["weights_moved_by_regrowth"] > 0
    assert rep["final_accuracy"] > 0.3  # 10 classes: well above chance after 3 rounds

    spec = json.loads((out / "model.json").read_text())
    mod, fn = spec["factory"].split(":")
    model = getattr(importlib.import_module(mod), fn)(**spec["kwargs"])
    model.load_state_dict(torch.load(out / spec["state_dict"]))
    model.eval()
    x = torch.from_numpy(D.Split("digits", 3, 0.5, 0).test().x[:16])
    scripted = torch.jit.load(str(out / spec["torchscript"]))
    torch.testing.assert_close(scripted(x), model(x))
    report = json.loads((out / "report.json").read_text())
    assert report["client_to_server_bytes"] == rep["client_to_server_bytes"] > 0
    assert not (tmp_path / "run.partial").exists()


def test_one_seed_reproduces_bit_for_bit(tmp_path):
    """Same seed, two runs (new federations, new random node ids, replies in whatever order):
    the final state and masks are identical, with partial participation and regrowth on."""
    states = []
    for i in range(2):
        cfg = PruneConfig(clients=4, fraction=0.5, min_train_nodes=2, rounds=3, density=0.1,
                          candidates=2, delta_t=1, t_end=3, epochs=1, timeout=120,
                          out=str(tmp_path / f"run{i}"))
        rep = run_pruning(cfg).report
        assert [r["clients"] for r in rep["rounds"]] == [2, 2, 2]  # ⌊0.5·4⌋ sampled per round
        states.append((torch.load(tmp_path / f"run{i}" / "model_state.pt"),
                       torch.load(tmp_path / f"run{i}" / "masks.pt"), rep))
    (s0, m0, r0), (s1, m1, r1) = states
    assert s0.keys() == s1.keys() and all(torch.equal(s0[k], s1[k]) for k in s0)
    assert all(torch.equal(m0[k], m1[k]) for k in m0)
    assert r0["final_accuracy"] == r1["final_accuracy"]
    assert r0["client_to_server_bytes"] == r1["client_to_server_bytes"]
    assert r0["weights_moved_by_regrowth"] > 0 and r0["client_peak_bytes"] > 0
