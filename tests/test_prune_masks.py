"""Masks, ERK densities and FedTiny's prune-and-regrow as pure functions."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymcu.prune import masks as M
from tinymcu.prune import zoo


def test_prunable_names_skip_bias_and_batchnorm():
    model = zoo.build("demo_cnn")
    names = M.prunable_names(model)
    assert names and all(n.endswith(".weight") for n in names)
    params = dict(model.named_parameters())
    assert all(params[n].dim() > 1 for n in names)  # conv/linear weights only, never BN/bias


@given(st.lists(st.tuples(st.integers(1, 64), st.integers(1, 64), st.sampled_from([1, 3])),
                min_size=1, max_size=6),
       st.floats(0.01, 1.0))
@settings(max_examples=60, deadline=None)
def test_erk_meets_the_global_density(layers, density):
    shapes = {f"l{i}": (o, c, k, k) for i, (o, c, k) in enumerate(layers)}
    dens = M.erk_densities(shapes, density)
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    kept = sum(dens[n] * sizes[n] for n in shapes)
    assert all(0.0 <= d <= 1.0 for d in dens.values())
    assert kept <= density * sum(sizes.values()) + 1e-6
    # Either the budget is met exactly or every layer is already dense.
    assert math.isclose(kept, density * sum(sizes.values()), rel_tol=1e-6) or all(
        d == 1.0 for d in dens.values())


def test_erk_keeps_small_layers_denser():
    dens = M.erk_densities({"stem": (16, 1, 3, 3), "big": (256, 256, 3, 3)}, 0.1)
    assert dens["stem"] > dens["big"]


def test_magnitude_mask_keeps_the_largest():
    w = torch.tensor([[0.1, -3.0], [2.0, 0.5]])
    m = M.magnitude_masks({"w": w}, {"w": 0.5})["w"]
    assert m.tolist() == [[False, True], [True, False]]


def test_global_magnitude_uses_one_threshold():
    ws = {"a": torch.tensor([5.0, 4.0, 3.0]), "b": torch.tensor([0.1, 0.2, 6.0])}
    m = M.global_magnitude_masks(ws, 0.5)
    assert m["a"].tolist() == [True, True, False] and m["b"].tolist() == [False, False, True]


@given(st.integers(4, 300), st.floats(0.05, 0.9), st.integers(0, 50), st.integers(0, 2**16))
@settings(max_examples=80, deadline=None)
def test_prune_and_regrow_keeps_density_and_grows_only_inactive(n, density, k, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, generator=g)
    mask = M.topk_mask(torch.rand(n, generator=g), M.keep_count(n, density))
    w = w * mask
    score = torch.rand(n, generator=g) * (torch.rand(n, generator=g) > 0.3)
    w2, m2 = M.prune_and_regrow(w, mask, score, k)
    assert int(m2.sum()) == int(mask.sum())  # density is constant
    grown = m2 & ~mask
    assert bool((score[grown] > 0).all())  # only positions with a gradient grow
    assert bool((w2[grown] == 0).all())  # grown weights start at zero
    assert bool((w2[~m2] == 0).all())  # nothing outside the mask survives
    dropped = mask & ~m2
    if dropped.any() and (mask & m2).any():  # the dropped are the smallest survivors' peers
        assert w[dropped].abs().max() <= w[mask & m2].abs().min() + 1e-7


def test_regrow_counts_follow_the_cosine_schedule():
    masks = {"w": torch.zeros(1000, dtype=torch.bool)}
    masks["w"][:100] = True
    k0 = M.regrow_counts(masks, 0.2, 0, 100)["w"]
    kmid = M.regrow_counts(masks, 0.2, 50, 100)["w"]
    kend = M.regrow_counts(masks, 0.2, 100, 100)["w"]
    assert (k0, kmid, kend) == (20, 10, 0)


@given(st.integers(1, 200), st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_pack_unpack_roundtrip(n, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(n, generator=g) > 0.5
    w = torch.randn(n, generator=g) * mask
    assert torch.equal(M.unpack(M.pack(w, mask), mask), w)
    assert M.pack(w, mask).numel() == int(mask.sum())
