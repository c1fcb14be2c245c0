"""From a board's memory to a density target.

Flash holds the weights in the sparse format our C runtime reads: per prunable layer a bitmask
of 1 bit per weight plus the non-zero int8 values, and per output channel an int32 bias (BN is
folded into it at export). The densest model whose weights fit the flash left after the runtime's
code (``reserve``) is the target.

SRAM is the activations' business, and weight pruning cannot lower it. Before any training we
plan it with the same memory model that checks the firmware: :func:`torch_ir.torch_graph` builds
the int8 graph our runtime will execute from the torch model's shapes, and the mcu_runtime
planner gives its arena op by op and, when that is over budget, for the cheapest patch schedule
(MCUNetV2) that fits. When neither fits, structured (channel) pruning — a narrower model — is
the remedy: :func:`structured_width` picks the widest channel multiplier whose arena fits.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import nn

from tinymcu.errors import OverBudget, TinymcuError
from tinymcu.prune import masks as M
from tinymcu.prune.modelspec import build_model, factory_path

DEFAULT_RESERVE = 64 * 1024
"""Flash kept for the runtime, kernels and application code."""


def _prunable_layers(model: nn.Module) -> dict[str, nn.Conv1d | nn.Conv2d | nn.Linear]:
    return {f"{n}.weight": m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))}


def bias_bytes(model: nn.Module) -> int:
    """int32 bias per output channel of every Conv/Linear (present or folded from BN)."""
    return sum(4 * (m.out_features if isinstance(m, nn.Linear) else m.out_channels)
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


@dataclass(frozen=True)
class SramPlan:
    """Planned SRAM of one model on one input: the op-by-op arena, and — only when that is over
    the budget — the arena of the patch schedule ``tinymcu check --schedule auto`` would pick
    (the fewest MACs that fit, else the smallest peak; None when no patch schedule applies)."""

    layer: int
    patch: int | None
    budget: int
    patch_split: int | None = None
    patch_grid: int | None = None

    @property
    def best(self) -> int:
        return min(self.layer, self.patch) if self.patch is not None else self.layer

    @property
    def fits(self) -> bool:
        return self.best <= self.budget

    def to_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits}

    @classmethod
    def from_dict(cls, d: dict) -> SramPlan:
        return cls(d["layer"], d["patch"], d["budget"], d.get("patch_split"), d.get("patch_grid"))

    def describe(self) -> str:
        text = f"SRAM {self.layer:,} B op by op"
        if self.patch is not None:
            text += f", {self.patch:,} B with {self.patch_grid}x{self.patch_grid} patches"
        return f"{text} (budget {self.budget:,} B)"


def plan_sram(model: nn.Module, input_shape: tuple[int, ...], sram_bytes: int) -> SramPlan:
    """Plan the int8 arena of ``model`` on one ``input_shape`` (C, H, W) sample."""
    from tinymcu.mcu_runtime import patch
    from tinymcu.mcu_runtime.planner import plan
    from tinymcu.mcu_runtime.schedule import layer_schedule
    from tinymcu.prune.torch_ir import torch_graph

    graph = torch_graph(model, input_shape)
    layer = plan(graph, layer_schedule(graph)).arena_bytes
    if layer <= sram_bytes:
        return SramPlan(layer, None, sram_bytes)
    chosen = patch.auto_schedule(graph, sram_bytes)
    if chosen.kind == "layer":  # no patch schedule applies, or none beats op by op
        return SramPlan(layer, None, sram_bytes)
    info = chosen.info
    return SramPlan(layer, info["peak"], sram_bytes, info["split"], info["grid"])


def sram_peak(model: nn.Module, input_shape: tuple[int, ...],
              sram_bytes: int) -> tuple[int, int | None]:
    """(op-by-op arena, patch arena or None): see :func:`plan_sram`."""
    p = plan_sram(model, input_shape, sram_bytes)
    return p.layer, p.patch


def check_sram(model: nn.Module, input_shape: tuple[int, ...], sram_bytes: int) -> SramPlan:
    """:func:`plan_sram`, raising :class:`OverBudget` (exit 1) when nothing fits."""
    p = plan_sram(model, input_shape, sram_bytes)
    if not p.fits:
        raise OverBudget(f"activations need {p.describe()}; weight pruning cannot lower that: "
                         "use --structured (narrower channels) or a bigger board")
    return p


def width_kwargs(spec: str, width: float) -> dict[str, float | int]:
    """Factory keyword arguments that scale the model's channels by ``width``.

    The factory's own ``width`` parameter is scaled from its default: a float default is a
    multiplier (MobileNetV2's 0.35 → 0.35·width), an int default a base channel count
    (ResNet-8's 16 → round(16·width)). Factories without a ``width`` parameter cannot be
    narrowed.
    """
    if width == 1.0:
        return {}
    param = inspect.signature(_factory(spec)).parameters.get("width")
    if param is None or not isinstance(param.default, (int, float)) \
            or isinstance(param.default, bool):
        raise TinymcuError(f"structured pruning needs a factory with a numeric `width` "
                           f"parameter; {factory_path(spec)} has none")
    if isinstance(param.default, int):
        return {"width": max(1, round(param.default * width))}
    return {"width": round(param.default * width, 6)}


def build_at_width(spec: str, width: float, num_classes: int | None = None,
                   in_ch: int | None = None, seed: int | None = 0) -> nn.Module:
    """:func:`modelspec.build_model` with the channels scaled by ``width`` (1.0: unchanged)."""
    kwargs = width_kwargs(spec, width)
    if not kwargs:
        return build_model(spec, num_classes, in_ch, seed)
    factory = _factory(spec)
    params = inspect.signature(factory).parameters
    offered = {"num_classes": num_classes, "in_ch": in_ch, "seed": seed}
    kwargs.update({k: v for k, v in offered.items() if k in params and v is not None})
    return factory(**kwargs)


def _factory(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = factory_path(spec).partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise TinymcuError(f"cannot load model factory {spec!r}: {e}") from e


@dataclass(frozen=True)
class WidthChoice:
    width: float
    sram: SramPlan


def structured_width(build: Callable[[float], nn.Module], input_shape: tuple[int, ...],
                     sram: int, widths: tuple[float, ...] = (1.0, 0.75, 0.5, 0.35, 0.25)
                     ) -> WidthChoice:
    """Structured (channel) pruning for when activations, not weights, exceed SRAM: the widest
    channel multiplier in ``widths`` (tried widest first) whose planned arena — op by op, or the
    patch schedule that fits — is within ``sram``. ``build(f)`` returns the model with every
    layer's channels scaled by ``f``."""
    last = None
    for f in sorted(widths, reverse=True):
        last = plan_sram(build(f), input_shape, sram)
        if last.fits:
            return WidthChoice(f, last)
    raise OverBudget(f"even at width x{min(widths)} the activations need "
                     f"{last.describe() if last else 'more SRAM'}")


@dataclass(frozen=True)
class BoardBudget:
    density: float
    dense_flash: int
    flash_avail: int
    sram: SramPlan


def budget_for(model: nn.Module, input_shape: tuple[int, ...], sram: int, flash: int,
               reserve: int = DEFAULT_RESERVE) -> BoardBudget:
    """Density target from flash, and the planned SRAM to compare with the board's (weight
    pruning cannot lower it; a narrower model or a patch schedule can)."""
    return BoardBudget(density_for_flash(model, flash, reserve), dense_flash_bytes(model),
                       flash - reserve, plan_sram(model, input_shape, sram))
