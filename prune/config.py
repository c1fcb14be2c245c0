"""The settings of one pruning run, as one flat record.

The same dataclass feeds the ServerApp (simulation closure or ``flwr run`` run_config), the
ConfigRecord every client receives, and the checkpoint's fingerprint, so a resumed run can refuse
a checkpoint made with different settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tinymcu.errors import TinymcuError

METHODS = ("fedtiny", "feddst", "globalmp", "erkmp", "dense")
"""FedTiny; FedDST (client-side prune/regrow, server mask aggregation); one-shot magnitude
pruning after dense rounds with a global threshold and per-layer floor (globalmp) or ERK
layer densities (erkmp); dense FedAvg."""


@dataclass
class PruneConfig:
    model: str = "demo_cnn"
    data: str = "digits"
    clients: int = 10
    alpha: float = 0.5
    """Dirichlet concentration of the non-IID split; 0 or less means IID."""
    rounds: int = 30
    density: float = 0.1
    method: str = "fedtiny"
    width: float = 1.0
    """Channel width multiplier relative to the model factory's default (structured pruning)."""
    sram: int = 0
    """SRAM budget in bytes the model's planned arena must fit before training; 0: not gated."""
    out: str = "prune-out"
    seed: int = 0
    epochs: int = 2
    lr: float = 0.05
    lr_schedule: str = "cosine"
    """"cosine" decays the clients' learning rate over the rounds (to lr/20), "constant" not."""
    batch: int = 16
    candidates: int = 5
    """FedTiny's adaptive-BN candidates; 1 skips the selection (the no-ABNS ablation)."""
    regrow: bool = True
    """FedTiny's progressive pruning; False keeps the selected mask (the ablation)."""
    fraction: float = 1.0
    """FedAvg's ``fraction_train``: share of the connected clients sampled per round."""
    min_train_nodes: int = 1
    """FedAvg's ``min_train_nodes``: fewest clients sampled per round."""
    floor: float = 0.25
    """globalmp: every layer keeps at least floor·density of its weights (never empty)."""
    prune_alpha: float = 0.2
    delta_t: int = 0
    """Rounds between progressive updates; 0 scales the reference ΔT=10/T_end=100 to the run."""
    t_end: int = 0
    """Last round of progressive updates; 0: 3/4 of the run (the rest fine-tunes the mask)."""
    dense_rounds: int = 0
    """Global-MP baseline: dense rounds before the one-shot prune; 0 means half the run."""
    test_fraction: float = 0.2
    device: str = "auto"
    min_clients: int = 0
    """Fewest valid replies a round needs to go on; 0 means half the sampled clients (≥ 1)."""
    timeout: float = 300.0
    eval_clients: bool = False
    resume: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def validate(self) -> PruneConfig:
        if self.method not in METHODS:
            raise TinymcuError(f"unknown method {self.method!r}; choose from {', '.join(METHODS)}")
        if not 0.0 < self.density <= 1.0:
            raise TinymcuError(f"density must be in (0, 1], got {self.density}")
        if not 0.0 < self.width <= 1.0:
            raise TinymcuError(f"width must be in (0, 1], got {self.width}")
        if self.sram < 0:
            raise TinymcuError(f"SRAM budget must not be negative, got {self.sram}")
        if self.clients < 1 or self.rounds < 1:
            raise TinymcuError("need at least 1 client and 1 round")
        if self.method in ("globalmp", "erkmp") and self.rounds < 2:
            raise TinymcuError(f"{self.method} needs at least 2 rounds (dense, then fine-tune)")
        if not 0.0 < self.fraction <= 1.0:
            raise TinymcuError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.min_train_nodes < 1:
            raise TinymcuError("min_train_nodes must be at least 1")
        if self.lr_schedule not in ("cosine", "constant"):
            raise TinymcuError(f"lr_schedule must be cosine or constant, got {self.lr_schedule!r}")
        if self.delta_t < 0 or self.t_end < 0:
            raise TinymcuError("delta_t and t_end must not be negative (0: scaled to the run)")
        if self.candidates < 1:
            raise TinymcuError("need at least one FedTiny candidate")
        return self

    @property
    def iid(self) -> bool:
        return self.alpha <= 0

    @property
    def sampled(self) -> int:
        """Clients trained per round (FedAvg's rule: ⌊fraction·clients⌋, ≥ min_train_nodes)."""
        return min(self.clients, max(int(self.clients * self.fraction), self.min_train_nodes))

    @property
    def needed_replies(self) -> int:
        return self.min_clients or max(1, self.sampled // 2)

    def round_lr(self, t: int) -> float:
        """Client learning rate in round ``t`` (1-based)."""
        if self.lr_schedule == "constant":
            return self.lr
        floor = self.lr / 20
        return floor + (self.lr - floor) * 0.5 * (1 + math.cos(math.pi * (t - 1) / self.rounds))

    def flat(self) -> dict[str, str | int | float | bool]:
        """Flat scalars only: the shape Flower's ConfigRecord and run_config accept."""
        d = dataclasses.asdict(self)
        d["extra"] = json.dumps(self.extra, sort_keys=True)
        return d

    @classmethod
    def from_flat(cls, d: Mapping[str, Any]) -> PruneConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        # each value is coerced to its field's type below; validate() checks the result
        kw: dict[str, Any] = {}
        for k, v in d.items():
            k = k.replace("-", "_")
            if k not in names:
                continue
            if k == "extra":
                kw[k] = json.loads(v) if isinstance(v, str) else dict(v)
            else:
                default = getattr(cls, k, None)
                kw[k] = type(default)(v) if default is not None else v
        return cls(**kw).validate()

    def fingerprint(self) -> str:
        """Hash of the settings that change results (not out/resume/device/timeout)."""
        d = self.flat()
        for k in ("out", "resume", "device", "timeout"):
            d.pop(k)
        # a drill that stops the run early does not change what the finished run computes
        d["extra"] = json.dumps({k: v for k, v in self.extra.items() if k != "stop_after_round"},
                                sort_keys=True)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
