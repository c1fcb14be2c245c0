"""FedTiny's selection and regrowth math, and the local BN statistics it relies on."""

import numpy as np
import torch

from tinymcu.prune import fedtiny, local, zoo
from tinymcu.prune import masks as M


def test_pooled_moments_equal_the_moments_of_the_union():
    rng = np.random.default_rng(0)
    model = zoo.build("demo_cnn")
    a = rng.random((40, 1, 8, 8), dtype=np.float32)
    b = rng.random((25, 1, 8, 8), dtype=np.float32) * 2
    dev = torch.device("cpu")
    # With full-batch statistics, the union's BN inputs are the concatenation of both parts'
    # only for the first BN (later ones depend on batch statistics), so check the stem's BN.
    sa, sb = local.bn_statistics(model, a, dev), local.bn_statistics(model, b, dev)
    su = local.bn_statistics(model, np.concatenate([a, b]), dev, batch=10**6)
    pooled = fedtiny.pool_moments([(sa, 40), (sb, 25)])
    for k in ("stem.1.mean", "stem.1.sqmean"):
        np.testing.assert_allclose(pooled[k], su[k], rtol=1e-5, atol=1e-6)


def test_set_bn_statistics_installs_mean_and_variance():
    model = zoo.build("demo_cnn")
    x = np.random.default_rng(1).random((30, 1, 8, 8), dtype=np.float32)
    stats = local.bn_statistics(model, x, torch.device("cpu"), batch=1000)
    local.set_bn_statistics(model, stats)
    bn = model.stem[1]
    conv_out = model.stem[0](torch.from_numpy(x))
    torch.testing.assert_close(bn.running_mean, conv_out.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, conv_out.var((0, 2, 3), unbiased=False),
                               rtol=1e-3, atol=1e-5)


def test_candidates_are_sparse_at_the_target_and_differ_by_seed():
    cands = fedtiny.make_candidates(lambda s: zoo.build("demo_cnn", seed=s), 0.1, [1, 2])
    (s1, m1), (s2, m2) = cands
    assert abs(M.density(m1) - 0.1) < 0.01
    assert any(not torch.equal(m1[n], m2[n]) for n in m1)
    for n, m in m1.items():
        assert bool((s1[n][~m] == 0).all())


def test_select_candidate_weighs_clients_by_examples():
    # client A (900 examples) prefers candidate 1, client B (100) prefers candidate 0
    best, agg = fedtiny.select_candidate([([1.0, 0.5], 900), ([0.1, 2.0], 100)])
    assert best == 1 and agg[1] < agg[0]


def test_streaming_topk_reports_only_pruned_positions_as_a_mean():
    grad = torch.tensor([9.0, -8.0, 0.5, -3.0, 1.0])
    mask = torch.tensor([True, False, False, False, True])
    st = local.StreamingTopK(2)
    st.add(grad, mask)
    st.add(grad, mask)  # two equal batches: the mean equals one batch
    vals, idx = st.result()
    assert sorted(idx.tolist()) == [1, 3] and sorted(vals.tolist()) == [-8.0, -3.0]


def test_streaming_topk_matches_the_dense_mean_when_the_cap_holds_the_layer():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(200, generator=g) > 0.7
    grads = [torch.randn(200, generator=g) for _ in range(6)]
    st = local.StreamingTopK(50, cap_factor=4)  # cap 200: nothing is ever cut
    for gr in grads:
        st.add(gr, mask)
    vals, idx = st.result()
    mean = torch.where(mask, torch.zeros(200), torch.stack(grads).mean(0))
    want = torch.topk(mean.abs(), 50).indices
    assert sorted(idx.tolist()) == sorted(want.tolist())
    torch.testing.assert_close(torch.from_numpy(vals), mean[torch.from_numpy(idx).long()])


def test_streaming_topk_memory_is_bounded_by_the_cap():
    st = local.StreamingTopK(10)
    mask = torch.zeros(10_000, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        st.add(torch.randn(10_000, generator=g), mask)
        assert len(st.idx) <= 20 and len(st.vals) <= 20


def test_aggregate_topk_is_an_example_weighted_mean():
    reps = [(np.array([2.0], np.float32), np.array([1], np.int32), 3.0),
            (np.array([-4.0, 1.0], np.float32), np.array([1, 2], np.int32), 1.0)]
    score = fedtiny.aggregate_topk(reps, (3,))
    np.testing.assert_allclose(score.numpy(), [0.0, abs(2 * 0.75 - 4 * 0.25), 0.25])


def test_scaled_schedule_updates_before_t_end():
    s = fedtiny.Schedule.scaled(30)
    updates = [t for t in range(1, 31) if s.is_update(t)]
    assert updates and max(updates) < s.t_end <= 30
    assert fedtiny.Schedule().delta_t == 10 and fedtiny.Schedule().t_end == 100


def test_a_set_delta_t_or_t_end_keeps_the_other_scaled_and_leaves_rounds_to_fine_tune():
    # ΔT alone: T_end stays at 3/4 of the run, so the last quarter fine-tunes the mask.
    s = fedtiny.Schedule.scaled(12, delta_t=2)
    assert (s.delta_t, s.t_end) == (2, 9)
    assert [t for t in range(1, 13) if s.is_update(t)] == [2, 4, 6, 8]
    # T_end alone is honoured (it used to be ignored) and gets ~ten updates before it.
    s = fedtiny.Schedule.scaled(200, t_end=50)
    assert (s.delta_t, s.t_end) == (5, 50)
    assert fedtiny.Schedule.scaled(8) == fedtiny.Schedule(0.2, 1, 6)


def test_progressive_update_keeps_every_layer_density():
    model = zoo.build("demo_cnn")
    (state, masks), = fedtiny.make_candidates(lambda s: zoo.build("demo_cnn", seed=s), 0.2, [0])
    counts = M.regrow_counts(masks, 0.2, 1, 10)
    scores = {n: torch.rand(state[n].shape) for n in masks}
    new_state, new_masks, moved = fedtiny.progressive_update(state, masks, scores, counts)
    assert moved > 0
    for n in masks:
        assert int(new_masks[n].sum()) == int(masks[n].sum())
        assert bool((new_state[n][~new_masks[n]] == 0).all())
    assert model is not None
