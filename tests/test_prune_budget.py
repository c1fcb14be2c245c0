"""Board budgets: sparse flash accounting and the density it allows."""

import math

import numpy as np
import pytest

from tinymcu.cli import main
from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.prune import budget, fedtiny, zoo
from tinymcu.prune import masks as M


def test_density_for_flash_makes_the_sparse_weights_fit_exactly():
    model = zoo.build("mobilenetv2", width=0.35, num_classes=10)
    flash = 200 * 1024
    d = budget.density_for_flash(model, flash, reserve=64 * 1024)
    assert 0 < d < 1
    (_, masks), = fedtiny.make_candidates(
        lambda s: zoo.build("mobilenetv2", width=0.35, num_classes=10, seed=s), d, [0])
    used = budget.sparse_flash_bytes(model, masks)
    assert used <= flash - 64 * 1024 + len(masks)  # per-layer rounding of kept counts
    assert used > 0.98 * (flash - 64 * 1024)


def test_small_model_stays_dense():
    assert budget.density_for_flash(zoo.build("demo_cnn"), 1024 * 1024) == 1.0


def test_sparse_bytes_are_bitmask_plus_values_plus_biases():
    model = zoo.build("demo_cnn")
    names = M.prunable_names(model)
    params = dict(model.named_parameters())
    masks = M.magnitude_masks({n: params[n] for n in names}, {n: 0.5 for n in names})
    expect = budget.bias_bytes(model) + sum(math.ceil(m.numel() / 8) + int(m.sum())
                                           for m in masks.values())
    assert budget.sparse_flash_bytes(model, masks) == expect


def test_board_budget_plans_sram_with_the_runtime_planner():
    from tinymcu.mcu_runtime.planner import plan
    from tinymcu.mcu_runtime.schedule import layer_schedule
    from tinymcu.prune.torch_ir import torch_graph

    model = zoo.build("mobilenetv2", width=0.35, num_classes=10)
    b = budget.budget_for(model, (3, 144, 144), sram=256 * 1024, flash=1 << 20)
    g = torch_graph(model, (3, 144, 144))
    assert b.sram.layer == plan(g, layer_schedule(g)).arena_bytes > 256 * 1024
    assert b.sram.patch is not None and b.sram.patch <= 256 * 1024 and b.sram.fits
    assert 0 < b.density <= 1


def test_sram_peak_is_layer_only_when_that_fits():
    model = zoo.build("demo_cnn")
    layer, patch = budget.sram_peak(model, (1, 8, 8), 64 * 1024)
    assert (layer, patch) == (6144, None)  # = the exported demo's arena (test_prune_torch_ir)
    layer2, patch2 = budget.sram_peak(model, (1, 8, 8), 4096)
    assert layer2 == layer and patch2 is not None and patch2 < layer


def test_check_sram_over_budget_names_arena_and_budget():
    with pytest.raises(OverBudget, match=r"6,144 B op by op.*budget 1,000 B.*--structured"):
        budget.check_sram(zoo.build("demo_cnn"), (1, 8, 8), 1000)


def _resnet8(f):
    return budget.build_at_width("resnet8", f, 10, 3, 0)


def test_structured_width_picks_the_widest_whose_planned_arena_fits():
    # ResNet-8 @32²: best arenas (patch schedules) 17,200 B at x1, 13,668 at x0.75, 10,136 at x0.5
    choice = budget.structured_width(_resnet8, (3, 32, 32), sram=12_000)
    assert choice.width == 0.5 and choice.sram.fits and choice.sram.best <= 12_000
    assert not budget.plan_sram(_resnet8(0.75), (3, 32, 32), 12_000).fits
    assert budget.structured_width(_resnet8, (3, 32, 32), sram=64 * 1024).width == 1.0
    with pytest.raises(OverBudget, match="even at width x0.25"):
        budget.structured_width(_resnet8, (3, 32, 32), sram=1000)


def test_width_scales_the_factory_default():
    assert budget.width_kwargs("resnet8", 0.5) == {"width": 8}
    assert budget.width_kwargs("mobilenetv2", 0.5) == {"width": 0.175}
    assert budget.width_kwargs("demo_cnn", 1.0) == {}
    assert budget.width_kwargs("demo_cnn", 0.5) == {"width": 8}
    assert _resnet8(0.5).fc.in_features == 32
    with pytest.raises(TinymcuError, match="width"):
        budget.width_kwargs("torch.nn:Identity", 0.5)


# ----------------------------------------------------------------- the gate in the pruning run
def _npz(tmp_path, shape=(3, 32, 32), n=40):
    rng = np.random.default_rng(0)
    path = tmp_path / "imgs.npz"
    np.savez(path, x=rng.standard_normal((n, *shape)).astype(np.float32),
             y=np.arange(n) % 10)
    return str(path)


def test_cli_over_budget_is_one_line_exit_1_before_training(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["prune", "--model", "demo_cnn", "--density", "0.1", "--sram", "1000",
              "--out", "o"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "6,144 B op by op" in err and "1,000 B" in err and "--structured" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_cli_structured_needs_an_sram_budget(capsys):
    with pytest.raises(SystemExit) as e:
        main(["prune", "--density", "0.1", "--structured", "--out", "o"])
    assert e.value.code == 2 and "--structured needs an SRAM budget" in capsys.readouterr().err


def test_cli_structured_picks_a_width_that_fits(tmp_path):
    from tinymcu.commands.prune import _density_from_board, _sram_budget

    data = _npz(tmp_path)
    width, sram, line = _sram_budget("resnet8", data, None, "12000", 0, True)
    assert (width, sram) == (0.5, 12_000) and "width x0.5" in line
    d, _ = _density_from_board("resnet8", data, None, None, "80KiB", 0, width)
    assert d == budget.density_for_flash(_resnet8(0.5), 80 * 1024) < 1.0
    with pytest.raises(OverBudget):
        _sram_budget("resnet8", data, None, "12000", 0, False)


def test_run_gate_plans_the_model_at_its_width(tmp_path):
    from tinymcu.prune.config import PruneConfig
    from tinymcu.prune.run import sram_gate

    cfg = PruneConfig(model="resnet8", data=_npz(tmp_path), width=0.5, sram=12_000)
    assert sram_gate(cfg).best <= 12_000
    assert sram_gate(PruneConfig(model="resnet8", data=cfg.data)) is None
    with pytest.raises(OverBudget):
        sram_gate(PruneConfig(model="resnet8", data=cfg.data, sram=12_000))


def test_report_records_the_planned_sram(tmp_path):
    import json

    from tinymcu.prune.config import PruneConfig
    from tinymcu.prune.run import PruneResult, record_sram, sram_gate

    cfg = PruneConfig(model="resnet8", data=_npz(tmp_path), width=0.5, sram=12_000)
    (tmp_path / "report.json").write_text("{}")
    result = PruneResult(tmp_path, {"final_accuracy": 0.5})
    record_sram(result, sram_gate(cfg), cfg.width)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved == result.report and saved["sram"]["width"] == 0.5 and saved["sram"]["fits"]
    assert saved["sram"]["layer"] == budget.plan_sram(_resnet8(0.5), (3, 32, 32), 12_000).layer


def test_a_run_refuses_to_train_a_model_other_than_the_planned_one(tmp_path):
    from tinymcu.prune.config import PruneConfig
    from tinymcu.prune.run import check_trains_planned

    cfg = PruneConfig(model="resnet8", data=_npz(tmp_path), width=0.5, sram=12_000)
    check_trains_planned(cfg, _resnet8(0.5))
    with pytest.raises(TinymcuError, match="differs from the planned width-x0.5"):
        check_trains_planned(cfg, _resnet8(1.0))
