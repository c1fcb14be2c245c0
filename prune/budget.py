"""From a board's memory to a density target.

Flash holds the weights in the sparse format our C runtime reads: per prunable layer a bitmask
of 1 bit per weight plus the non-zero int8 values, and per output channel an int32 bias (BN is
folded into it at export). The densest model whose weights fit the flash left after the runtime's
code (``reserve``) is the target. SRAM is the activations' business: before export we can only
bound it from below by the largest (input + output) int8 bytes of any single layer, which every
layer-by-layer schedule needs; the exact arena comes from the mcu_runtime planner after export.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from tinymcu.errors import OverBudget

from . import masks as M

DEFAULT_RESERVE = 64 * 1024
"""Flash kept for the runtime, kernels and application code."""


def _prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {f"{n}.weight": m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def bias_bytes(model: nn.Module) -> int:
    """int32 bias per output channel of every Conv/Linear (present or folded from BN)."""
    return sum(4 * (m.out_channels if hasattr(m, "out_channels") else m.out_features)
               for m in _prunable_layers(model).values())


def dense_flash_bytes(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in _prunable_layers(model).values()) + bias_bytes(model)


def sparse_flash_bytes(model: nn.Module, masks: M.Masks) -> int:
    """Bitmask + non-zero int8 values + int32 biases."""
    total = bias_bytes(model)
    for m in masks.values():
        total += math.ceil(m.numel() / 8) + int(m.sum())
    return total


def density_for_flash(model: nn.Module, flash_bytes: int, reserve: int = DEFAULT_RESERVE) -> float:
    """Highest density whose sparse weights fit; 1.0 when dense int8 already fits."""
    avail = flash_bytes - reserve
    if dense_flash_bytes(model) <= avail:
        return 1.0
    layers = _prunable_layers(model)
    numel = sum(m.weight.numel() for m in layers.values())
    bitmask = sum(math.ceil(m.weight.numel() / 8) for m in layers.values())
    nnz = avail - bitmask - bias_bytes(model)
    if nnz < len(layers):
        raise OverBudget(f"even the bitmask and biases ({bitmask + bias_bytes(model):,} B) "
                         f"exceed the {avail:,} B of flash left for weights")
    return min(1.0, nnz / numel)


def activation_lower_bound(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Largest int8 (input + output) bytes of any leaf layer on one sample."""
    peak = 0
    hooks = []

    def hook(_m, inputs, output):
        nonlocal peak
        size = sum(t.numel() for t in inputs if isinstance(t, torch.Tensor)) + output.numel()
        peak = max(peak, size)

    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return peak


@dataclass(frozen=True)
class BoardBudget:
    density: float
    dense_flash: int
    flash_avail: int
    activation_lower_bound: int
    sram: int

    @property
    def sram_may_fit(self) -> bool:
        return self.activation_lower_bound <= self.sram


def budget_for(model: nn.Module, input_shape: tuple[int, ...], sram: int, flash: int,
               reserve: int = DEFAULT_RESERVE) -> BoardBudget:
    """Density target from flash, and the activation bound to compare with SRAM (weight
    pruning cannot lower it; a narrower model or a patch schedule can)."""
    act = activation_lower_bound(model, input_shape)
    return BoardBudget(density_for_flash(model, flash, reserve), dense_flash_bytes(model),
                       flash - reserve, act, sram)


def structured_width(build: Callable[[float], nn.Module], input_shape: tuple[int, ...],
                     sram: int, widths: tuple[float, ...] = (1.0, 0.75, 0.5, 0.35, 0.25)) -> float:
    """Structured (channel) pruning for when activations, not weights, exceed SRAM: the widest
    channel multiplier whose layer-by-layer activation bound fits ``sram``. ``build(f)`` returns
    the model with every layer's channels scaled by ``f``."""
    for f in widths:
        if activation_lower_bound(build(f), input_shape) <= sram:
            return f
    raise OverBudget(f"even at width x{widths[-1]} the activations exceed {sram:,} B of SRAM")
