"""FedTiny's two mechanisms as pure functions over tensors (no Flower here).

1. Adaptive BatchNorm selection: K candidate sparse models (K seeds, ERK layer densities,
   magnitude masks); clients measure BN input moments per candidate, the server pools them by
   example count, clients score each candidate's loss with the pooled BN, the lowest total wins.
   Pooling the moments before scoring removes the bias a single client's non-IID data would put
   into the choice.
2. Progressive pruning: every ΔT rounds until T_end, clients send the top-k of each layer's
   mean gradient over its *inactive* weights (values + flat indices, k bounded by the schedule;
   streamed without a dense accumulator, ``local.StreamingTopK``); the server averages them
   weighted by examples, drops the k smallest active weights and grows the k inactive weights
   with the largest aggregated gradient, so density is constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tinymcu.prune import masks as M


@dataclass(frozen=True)
class Schedule:
    """When progressive pruning happens and how much moves (reference defaults α=0.2, ΔT=10,
    T_end=100 for long runs; :meth:`scaled` keeps the same shape for a short run)."""

    alpha: float = 0.2
    delta_t: int = 10
    t_end: int = 100

    @classmethod
    def scaled(cls, rounds: int, alpha: float = 0.2, delta_t: int = 0,
               t_end: int = 0) -> Schedule:
        """The run's schedule. Unset (0) values keep the reference shape scaled to the run:
        T_end at 3/4 of the run (at most 100), leaving its last quarter to fine-tune the final
        mask, and ten updates before it, at least 1 round apart. A set ΔT alone keeps that
        T_end, and a set T_end alone gets its ten updates: either one overridden must not
        silently drop the other's scaling (ΔT with T_end = the whole run would leave no
        round to fine-tune; a T_end without ΔT used to be ignored)."""
        t_end = t_end or max(1, min(100, math.ceil(0.75 * rounds)))
        return cls(alpha=alpha, delta_t=delta_t or max(1, round(t_end / 10)), t_end=t_end)

    def is_update(self, t: int) -> bool:
        return t > 0 and t % self.delta_t == 0 and t < self.t_end


def make_candidates(
    build: Callable[[int], nn.Module], density: float, seeds: list[int]
) -> list[tuple[dict[str, torch.Tensor], M.Masks]]:
    """One sparse model per seed: that seed's initial weights, ERK densities, magnitude masks."""
    out = []
    for seed in seeds:
        model = build(seed)
        names = M.prunable_names(model)
        params = dict(model.named_parameters())
        weights = {n: params[n].detach() for n in names}
        dens = M.erk_densities({n: tuple(w.shape) for n, w in weights.items()}, density)
        mk = M.magnitude_masks(weights, dens)
        M.apply_masks(model, mk)
        out.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, mk))
    return out


def pool_moments(reports: list[tuple[dict[str, np.ndarray], float]]) -> dict[str, np.ndarray]:
    """Example-weighted mean of clients' moment arrays (mean and E[x²] pool linearly)."""
    total = sum(n for _, n in reports)
    pooled: dict[str, np.ndarray] = {}
    for k in reports[0][0]:
        acc = np.zeros(reports[0][0][k].shape, dtype=np.float64)
        for r, n in reports:
            acc = acc + r[k].astype(np.float64) * (n / total)
        pooled[k] = acc.astype(np.float32)
    return pooled


def select_candidate(losses: list[tuple[list[float], float]]) -> tuple[int, list[float]]:
    """Index of the candidate with the lowest example-weighted loss, and all weighted losses."""
    total = sum(n for _, n in losses)
    k = len(losses[0][0])
    agg = [sum(ls[i] * n for ls, n in losses) / total for i in range(k)]
    return int(np.argmin(agg)), agg


def aggregate_topk(
    reports: list[tuple[np.ndarray, np.ndarray, float]], shape: tuple[int, ...]
) -> torch.Tensor:
    """Example-weighted mean of sparse gradient reports (in report order) as a dense |score|
    tensor.

    A position a client did not report counts as zero for that client: it was not among its
    top-k, so its gradient there was small.
    """
    total = sum(n for _, _, n in reports) or 1.0
    acc = np.zeros(math.prod(shape), np.float64)
    for vals, idx, n in reports:
        np.add.at(acc, idx.astype(np.int64), vals.astype(np.float64) * (n / total))
    return torch.from_numpy(np.abs(acc).astype(np.float32)).view(shape)


def progressive_update(
    state: dict[str, torch.Tensor],
    masks: M.Masks,
    scores: dict[str, torch.Tensor],
    counts: dict[str, int],
) -> tuple[dict[str, torch.Tensor], M.Masks, int]:
    """Apply prune-and-regrow to every layer; returns (state, masks, weights moved)."""
    new_state, new_masks, moved = dict(state), dict(masks), 0
    for n, mk in masks.items():
        w, m2 = M.prune_and_regrow(state[n], mk, scores.get(n, torch.zeros_like(state[n])),
                                   counts.get(n, 0))
        moved += int((m2 & ~mk).sum())
        new_state[n], new_masks[n] = w, m2
    return new_state, new_masks, moved
