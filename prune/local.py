"""What a client does with its local data: masked SGD, BatchNorm statistics, loss.

Kept free of Flower so the same functions run in unit tests, in the ClientApp and on the server
(test-set evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tinymcu.prune.masks import Masks, apply_masks, prune_and_regrow


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(x: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator | None):
    order = rng.permutation(len(y)) if rng is not None else np.arange(len(y))
    for i in range(0, len(y), batch):
        idx = order[i : i + batch]
        yield torch.from_numpy(x[idx]), torch.from_numpy(y[idx])


class StreamingTopK:
    """Running top-k of one layer's mean gradient over its *inactive* positions, in O(k) memory.

    After each batch, the batch gradient's ``cap`` largest inactive entries are merged into a
    sparse running sum (values at equal indices add) that is cut back to its ``cap`` largest;
    the result is the ``k`` largest of that sum divided by the number of batches (a mean, so
    clients with more batches do not shout louder). ``cap = 2k`` keeps positions that were
    large in a few batches alive long enough to be summed. What is held: ``cap`` float32
    values and int64 indices per layer, plus one transient dense score of the layer per batch
    (freed before the next layer); autograd's ``.grad`` buffers exist for SGD anyway.
    """

    def __init__(self, k: int, cap_factor: int = 2) -> None:
        self.k = k
        self.cap = max(1, cap_factor * k)
        self.idx = torch.zeros(0, dtype=torch.int64)
        self.vals = torch.zeros(0, dtype=torch.float32)
        self.batches = 0

    def add(self, grad: torch.Tensor, mask: torch.Tensor) -> None:
        self.batches += 1
        if self.k <= 0:
            return
        score = torch.where(mask, torch.zeros_like(grad), grad).flatten().float().cpu()
        n = min(self.cap, int((~mask).sum()))
        top = torch.topk(score.abs(), n, sorted=False).indices if n > 0 else self.idx[:0]
        idx = torch.cat([self.idx, top])
        vals = torch.cat([self.vals, score[top]])
        del score
        uniq, inv = torch.unique(idx, return_inverse=True)
        summed = torch.zeros(len(uniq), dtype=torch.float32).index_add_(0, inv, vals)
        if len(uniq) > self.cap:
            keep = torch.sort(torch.topk(summed.abs(), self.cap, sorted=False).indices).values
            uniq, summed = uniq[keep], summed[keep]
        self.idx, self.vals = uniq, summed

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean values float32, flat indices int32) of the k largest |mean gradient|."""
        k = min(self.k, len(self.idx))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int32)
        sel = torch.sort(torch.topk(self.vals.abs(), k, sorted=False).indices).values
        vals = self.vals[sel] / max(1, self.batches)
        return vals.numpy().astype(np.float32), self.idx[sel].to(torch.int32).numpy()

    def dense_score(self, shape: torch.Size) -> torch.Tensor:
        """|mean gradient| as a dense tensor (zero off the kept entries), for regrowth."""
        vals, idx = self.result()
        out = torch.zeros(shape.numel())
        out[torch.from_numpy(idx).long()] = torch.from_numpy(np.abs(vals))
        return out.view(shape)


@dataclass
class TrainResult:
    loss: float
    topk: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """FedTiny's report: per layer, (mean gradient values, flat indices) of the top-k."""
    masks: Masks | None = None
    """The masks after FedDST's client-side prune/regrow (None when it did not run)."""


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
    topk: dict[str, int] | None = None,
    readjust: dict[str, int] | None = None,
) -> TrainResult:
    """Masked local SGD.

    ``topk``: stream the top-k mean gradient of each listed layer's inactive weights over the
    last epoch (FedTiny's regrowth signal, :class:`StreamingTopK`). ``readjust``: FedDST's
    client-side step — after the first epoch (the last if there is one), drop each listed
    layer's k smallest active weights and grow the k inactive ones with the largest streamed
    gradient (new weights start at zero), then keep training under the new mask.

    Pruned weights are re-zeroed after every step so momentum cannot revive them; their
    gradients are still computed by autograd, which is what regrowth needs.
    """
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    rng = np.random.default_rng(seed)
    params = dict(model.named_parameters())
    dev_masks = {n: m.to(device) for n, m in (masks or {}).items()}
    topk_epoch = epochs - 1
    readjust_epoch = 0
    streams = {n: StreamingTopK(k) for n, k in (topk or {}).items()}
    adjust = {n: StreamingTopK(k) for n, k in (readjust or {}).items()}
    losses: list[float] = []
    new_masks: Masks | None = None
    for epoch in range(epochs):
        for xb, yb in _batches(x, y, batch, rng):
            xb, yb = xb.to(device), yb.to(device)
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            if epoch == topk_epoch:
                for n, st in streams.items():
                    st.add(_grad(params, n).detach(), dev_masks[n])
            if epoch == readjust_epoch:
                for n, st in adjust.items():
                    st.add(_grad(params, n).detach(), dev_masks[n])
            for n, m in dev_masks.items():
                _grad(params, n).mul_(m)
            opt.step()
            if dev_masks:
                apply_masks(model, dev_masks)
            losses.append(float(loss))
        if epoch == readjust_epoch and adjust:
            new_masks = _readjust(params, dev_masks, adjust)
            dev_masks = {n: m.to(device) for n, m in new_masks.items()}
            apply_masks(model, dev_masks)
    return TrainResult(float(np.mean(losses)) if losses else 0.0,
                       {n: st.result() for n, st in streams.items()}, new_masks)


def _readjust(params: dict[str, nn.Parameter], masks: Masks,
              streams: dict[str, StreamingTopK]) -> Masks:
    """FedDST's local prune/regrow on every layer with a stream; other layers keep theirs."""
    out = {n: m.cpu() for n, m in masks.items()}
    with torch.no_grad():
        for n, st in streams.items():
            w = params[n].detach().cpu()
            new_w, out[n] = prune_and_regrow(w, out[n], st.dense_score(w.shape), st.k)
            params[n].copy_(new_w.to(params[n].device))
    return out


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


def _grad(params: dict[str, nn.Parameter], name: str) -> torch.Tensor:
    """``name``'s gradient after ``backward()``. None would mean a masked layer that is frozen
    or outside the loss: masking or scoring its gradient would be meaningless, so say so."""
    g = params[name].grad
    if g is None:
        raise ValueError(f"masked layer {name} got no gradient (frozen or unused)")
    return g


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
            r_mean, r_var = mod.running_mean, mod.running_var
            if r_mean is None or r_var is None:  # track_running_stats=False
                raise ValueError(f"BN layer {name} keeps no running statistics to set")
            mean = torch.from_numpy(stats[f"{name}.mean"]).to(r_mean)
            var = torch.from_numpy(stats[f"{name}.sqmean"]).to(r_var) - mean * mean
            r_mean.copy_(mean)
            r_var.copy_(var.clamp_min(0.0))
