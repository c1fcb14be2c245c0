"""Board budgets: sparse flash accounting and the density it allows."""

import math

import pytest

from tinymcu.errors import OverBudget
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


def test_activation_bound_flags_models_whose_activations_exceed_sram():
    model = zoo.build("mobilenetv2", width=0.35, num_classes=10)
    act = budget.activation_lower_bound(model, (3, 144, 144))
    assert act >= 3 * 144 * 144 + 16 * 72 * 72  # stem conv: input image + its output
    b = budget.budget_for(model, (3, 144, 144), sram=256 * 1024, flash=1 << 20)
    assert not b.sram_may_fit and 0 < b.density <= 1


def test_structured_width_picks_the_widest_that_fits():
    def build(f):
        return zoo.build("mobilenetv2", width=f, num_classes=10)

    f = budget.structured_width(build, (3, 96, 96), sram=256 * 1024)
    assert f == 0.5  # width 1.0 and 0.75 need 432 KiB layer by layer, 0.5 needs 216 KiB
    assert budget.activation_lower_bound(build(f), (3, 96, 96)) <= 256 * 1024
    with pytest.raises(OverBudget):
        budget.structured_width(build, (3, 96, 96), sram=1000)
