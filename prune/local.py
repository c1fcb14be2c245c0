"""What a client does with its local data: masked SGD, BatchNorm statistics, loss.

Kept free of Flower so the same functions run in unit tests, in the ClientApp and on the server
(test-set evaluation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .masks import Masks, apply_masks


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(x: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator | None):
    order = rng.permutation(len(y)) if rng is not None else np.arange(len(y))
    for i in range(0, len(y), batch):
        idx = order[i : i + batch]
        yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    masks: Masks | None,
    *,
    epochs: int,
    lr: float,
    batch: int,
    seed: int,
    device: torch.device,
    collect_grads: bool = False,
) -> tuple[float, dict[str, torch.Tensor]]:
    """Masked local SGD. Returns mean training loss and, if asked, the gradient of each masked
    weight summed over the last epoch's batches (FedTiny's regrowth signal).

    Pruned weights are re-zeroed after every step so momentum cannot revive them; their
    gradients are still computed by autograd, which is what regrowth needs.
    """
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(seed)
    params = dict(model.named_parameters())
    grads = {n: torch.zeros_like(params[n]) for n in (masks or {})} if collect_grads else {}
    dev_masks = {n: m.to(device) for n, m in (masks or {}).items()}
    losses: list[float] = []
    for epoch in range(epochs):
        for xb, yb in _batches(x, y, batch, rng):
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            if collect_grads and epoch == epochs - 1:
                for n in grads:
                    grads[n] += params[n].grad.detach()
            for n, m in dev_masks.items():
                params[n].grad.mul_(m)
            opt.step()
            if dev_masks:
                apply_masks(model, dev_masks)
            losses.append(float(loss))
    return float(np.mean(losses)) if losses else 0.0, {n: g.cpu() for n, g in grads.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device, batch: int = 512
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    model.to(device).eval()
    loss_sum, correct = 0.0, 0
    for xb, yb in _batches(x, y, batch, None):
        xb, yb = xb.to(device), yb.to(device)
        out = model(xb)
        loss_sum += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
        correct += int((out.argmax(1) == yb).sum())
    n = max(1, len(y))
    return loss_sum / n, correct / n


def bn_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    return {n: m for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)}


@torch.no_grad()
def bn_statistics(
    model: nn.Module, x: np.ndarray, device: torch.device, batch: int = 512
) -> dict[str, np.ndarray]:
    """Exact per-channel mean and (biased) variance of every BN layer's input on ``x``.

    Computed from running sums of x and x² over all local samples (not torch's momentum
    average), so the server can pool clients exactly: the pooled moments of the union equal the
    example-weighted mean of the clients' moments.
    """
    model.to(device).eval()
    layers = bn_layers(model)
    sums: dict[str, list[torch.Tensor]] = {}
    counts: dict[str, int] = {}
    hooks = []

    def make_hook(name: str):
        def hook(mod, inputs, _out):
            t = inputs[0].transpose(0, 1).reshape(inputs[0].shape[1], -1).double()
            zero = torch.zeros(t.shape[0], dtype=torch.float64, device=t.device)
            s = sums.setdefault(name, [zero, zero.clone()])
            s[0] += t.sum(1)
            s[1] += (t * t).sum(1)
            counts[name] = counts.get(name, 0) + t.shape[1]

        return hook

    for name, mod in layers.items():
        hooks.append(mod.register_forward_hook(make_hook(name)))
    # Each BN normalises with its batch statistics (train mode, momentum 0 so the stored stats
    # are untouched) while its input moments are recorded: the candidate's stale running stats
    # upstream would otherwise distort what downstream layers see.
    for m in layers.values():
        m.train()
        m.momentum = 0.0
    try:
        for xb, _ in _batches(x, np.zeros(len(x), dtype=np.int64), batch, None):
            model(xb.to(device))
    finally:
        for h in hooks:
            h.remove()
        for m in layers.values():
            m.momentum = 0.1
        model.eval()
    out = {}
    for name, (s1, s2) in sums.items():
        n = counts[name]
        mean = s1 / n
        out[f"{name}.mean"] = mean.float().cpu().numpy()
        out[f"{name}.sqmean"] = (s2 / n).float().cpu().numpy()
    return out


def set_bn_statistics(model: nn.Module, stats: dict[str, np.ndarray]) -> None:
    """Install pooled moments (mean, E[x²]) as the BN layers' running mean/variance."""
    with torch.no_grad():
        for name, mod in bn_layers(model).items():
            mean = torch.from_numpy(stats[f"{name}.mean"]).to(mod.running_mean)
            var = torch.from_numpy(stats[f"{name}.sqmean"]).to(mod.running_var) - mean * mean
            mod.running_mean.copy_(mean)
            mod.running_var.copy_(var.clamp_min(0.0))
