"""Turn ``--model NAME|package.module:factory`` into a torch module, the same way on server and
clients (clients rebuild the architecture from the spec; only weights travel)."""

from __future__ import annotations

import importlib
import inspect

from torch import nn

from tinymcu.errors import TinymcuError
from tinymcu.prune import zoo


def factory_path(spec: str) -> str:
    """The ``package.module:factory`` form of a spec (zoo names map into ``tinymcu.prune.zoo``)."""
    if ":" in spec:
        return spec
    if spec in zoo.MODELS:
        return f"tinymcu.prune.zoo:{spec}"
    raise TinymcuError(
        f"unknown model {spec!r}; use one of {', '.join(sorted(zoo.MODELS))} "
        "or package.module:factory"
    )


def build_model(spec: str, num_classes: int | None = None, in_ch: int | None = None,
                seed: int | None = 0) -> nn.Module:
    """Build the model; ``num_classes``/``in_ch``/``seed`` are passed if given and the factory
    takes them (None keeps the factory's default)."""
    module_name, _, attr = factory_path(spec).partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise TinymcuError(f"cannot load model factory {spec!r}: {e}") from e
    params = inspect.signature(factory).parameters
    offered = {"num_classes": num_classes, "in_ch": in_ch, "seed": seed}
    kwargs = {k: v for k, v in offered.items() if k in params and v is not None}
    model = factory(**kwargs)
    if not isinstance(model, nn.Module):
        raise TinymcuError(f"{spec!r} returned {type(model).__name__}, not a torch nn.Module")
    return model


def factory_kwargs(spec: str, num_classes: int, in_ch: int) -> dict[str, int]:
    """The keyword arguments :func:`build_model` passes (saved beside exported weights)."""
    module_name, _, attr = factory_path(spec).partition(":")
    params = inspect.signature(getattr(importlib.import_module(module_name), attr)).parameters
    offered = {"num_classes": num_classes, "in_ch": in_ch}
    return {k: v for k, v in offered.items() if k in params}
