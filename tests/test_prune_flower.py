"""The real thing through Flower's simulation runtime (Ray): FedTiny with a faulty client,
killed mid-run and resumed, and the exported model reloads from its factory spec."""

import importlib
import json

import pytest
import torch

from tinymcu.prune import data as D
from tinymcu.prune.config import PruneConfig
from tinymcu.prune.run import run_pruning

pytestmark = pytest.mark.slow


class Killed(Exception):
    pass


def test_fedtiny_survives_a_nan_client_and_resumes_after_a_kill(tmp_path):
    out = tmp_path / "run"
    cfg = PruneConfig(clients=3, rounds=3, density=0.2, out=str(out), candidates=2,
                      delta_t=1, t_end=3, min_clients=2, timeout=120,
                      extra={"inject_fault": "1:nan"})

    def kill_after_round_2(rec):
        if rec["round"] == 2:
            raise Killed("simulated kill")

    with pytest.raises(Exception):  # noqa: B017 - Flower wraps the server thread's exception
        run_pruning(cfg, on_round=kill_after_round_2, keep_backend=True)
    ck = torch.load(tmp_path / "run.partial" / "checkpoint.pt", weights_only=False)
    assert ck["round"] == 2 and not out.exists()

    cfg.resume = True
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
