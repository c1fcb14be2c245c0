"""Sparsity masks: which weights exist.

Only the weight tensors of Conv/Linear layers are prunable: biases and normalisation parameters
are a rounding error in flash and pruning them hurts accuracy for nothing. A mask is a dict
``name -> bool tensor`` with the weight's shape; everything here is a pure function over tensors
so the federated code and the tests share one definition of "prune" and "regrow".
"""

from __future__ import annotations

import math

import torch
from torch import nn

Masks = dict[str, torch.Tensor]


def prunable_names(model: nn.Module) -> list[str]:
    """Names of the weight tensors of every Conv and Linear layer, in module order."""
    names = []
    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            names.append(f"{mod_name}.weight" if mod_name else "weight")
    return names


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Erdős–Rényi-Kernel layer densities whose weighted mean is ``density``.

    ERK gives a layer density proportional to sum(dims)/prod(dims), so small layers (first conv,
    classifier) stay denser than big ones; layers that would exceed 1 are made dense and the rest
    rescaled until the global budget is met exactly.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / math.prod(s) for n, s in shapes.items()}
    total = sum(sizes.values())
    dense: set[str] = set()
    while True:
        budget = density * total - sum(sizes[n] for n in dense)
        denom = sum(raw[n] * sizes[n] for n in shapes if n not in dense)
        if denom <= 0:
            break
        eps = budget / denom
        over = [n for n in shapes if n not in dense and eps * raw[n] > 1.0]
        if not over:
            break
        dense.update(over)
    return {n: 1.0 if n in dense else min(1.0, max(0.0, eps * raw[n])) for n in shapes}


def keep_count(numel: int, density: float) -> int:
    """Number of weights kept at ``density``; at least one so no layer is cut off."""
    return max(1, min(numel, round(density * numel)))


def topk_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of the ``k`` largest entries of ``score`` (ties broken by position)."""
    flat = score.flatten()
    mask = torch.zeros(flat.numel(), dtype=torch.bool)
    if k > 0:
        idx = torch.topk(flat, k, sorted=False).indices
        mask[idx] = True
    return mask.view_as(score)


def magnitude_masks(weights: dict[str, torch.Tensor], densities: dict[str, float]) -> Masks:
    """Per-layer magnitude masks: keep the largest |w| of each layer at its own density."""
    return {
        n: topk_mask(w.detach().abs(), keep_count(w.numel(), densities[n]))
        for n, w in weights.items()
    }


def global_magnitude_masks(weights: dict[str, torch.Tensor], density: float,
                           floor: float = 0.0) -> Masks:
    """One threshold over all layers (the global magnitude pruning baseline), with a per-layer
    floor: every layer first keeps its ``max(1, floor·density·numel)`` largest weights, and the
    rest of the budget goes to the globally largest of the remaining weights.

    Without a floor (``floor=0``, still at least one weight per layer) a single threshold can
    leave a large layer almost empty — it cut every weight of the demo CNN's widest conv at
    5 % and the model predicted a constant; the floor keeps the baseline honest at every
    density while the total kept stays exactly ``keep_count(total, density)``.
    """
    total = sum(w.numel() for w in weights.values())
    k = keep_count(total, density)
    floors = {n: min(w.numel(), max(1, math.ceil(floor * density * w.numel())))
              for n, w in weights.items()}
    reserved = {n: topk_mask(w.detach().abs(), floors[n]) for n, w in weights.items()}
    rest = max(0, k - sum(floors.values()))
    # Reserved positions score -1 so the global pick only chooses among the others.
    flat = torch.cat([torch.where(reserved[n], torch.full_like(w, -1.0), w.detach().abs()).flatten()
                      for n, w in weights.items()])
    keep = topk_mask(flat, rest)
    out, start = {}, 0
    for n, w in weights.items():
        out[n] = keep[start : start + w.numel()].view_as(w).clone() | reserved[n]
        start += w.numel()
    return out


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights in place (after every optimiser step, and after aggregation)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for n, m in masks.items():
            params[n].mul_(m.to(params[n].dtype))


def density(masks: Masks) -> float:
    """Fraction of prunable weights kept."""
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    return kept / total if total else 1.0


def layer_densities(masks: Masks) -> dict[str, float]:
    return {n: float(m.float().mean()) for n, m in masks.items()}


def regrow_counts(masks: Masks, alpha: float, t: int, t_end: int) -> dict[str, int]:
    """FedTiny's per-layer update size k = α/2·(1 + cos(π t / T_end))·active, cosine-annealed."""
    frac = alpha / 2.0 * (1.0 + math.cos(math.pi * min(t, t_end) / t_end))
    out = {}
    for n, m in masks.items():
        active = int(m.sum())
        inactive = m.numel() - active
        out[n] = max(0, min(int(frac * active), inactive, active - 1))
    return out


def prune_and_regrow(
    weight: torch.Tensor, mask: torch.Tensor, grad_score: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the k smallest active weights and grow the k inactive ones with the largest score.

    ``grad_score`` is the aggregated |gradient| over the whole weight (zero where no client
    reported one). Only inactive positions with a positive score may grow, and the number pruned
    equals the number grown, so the layer's density never changes. Grown weights start at zero
    (as in RigL) so regrowth does not perturb the function the model computes.
    Returns the new (weight, mask).
    """
    inactive_score = torch.where(mask, torch.full_like(grad_score, -1.0), grad_score.abs())
    n_grow = min(k, int((inactive_score > 0).sum()), int(mask.sum()))
    if n_grow <= 0:
        return weight, mask
    grow = topk_mask(inactive_score, n_grow)
    drop_score = torch.where(mask, weight.abs(), torch.full_like(weight, float("inf")))
    drop = topk_mask(-drop_score, n_grow)
    new_mask = (mask & ~drop) | grow
    new_weight = torch.where(new_mask & ~grow, weight, torch.zeros_like(weight))
    return new_weight, new_mask


def pack(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The active values of a masked tensor, in row-major order: what a sparse client sends."""
    return values.flatten()[mask.flatten()]


def unpack(packed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack`: a dense tensor with zeros where the mask is off."""
    out = torch.zeros(mask.numel(), dtype=packed.dtype)
    out[mask.flatten()] = packed
    return out.view(mask.shape)
