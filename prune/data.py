"""Datasets and how they are split over federated clients.

A dataset is two numpy arrays: ``x`` float32 NCHW and ``y`` int64 labels. Sources: the built-in
``digits`` (sklearn, no download), a user ``.npz`` with ``x`` and ``y`` (NHWC or NCHW; uint8 is
scaled to [0, 1]), or an image folder (one sub-folder per class). Every client derives its own
partition from (source, clients, alpha, seed), so no data ever travels over Flower.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinymcu.errors import TinymcuError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm"}


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray
    y: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None, :, :]
    return Dataset(x, d.target.astype(np.int64))


def _to_nchw(x: np.ndarray, source: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise TinymcuError(f"{source}: x must be (N,H,W), (N,H,W,C) or (N,C,H,W), got {x.shape}")
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / 255.0)
    return x.astype(np.float32)


def _npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f or "y" not in f:
                raise TinymcuError(f"{path}: .npz must hold arrays 'x' and 'y', has {list(f)}")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as e:
        raise TinymcuError(f"{path}: not a readable .npz file ({e})") from e
    if len(x) != len(y) or len(x) == 0:
        raise TinymcuError(f"{path}: x has {len(x)} samples but y has {len(y)}")
    y = np.asarray(y).reshape(-1)
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise TinymcuError(f"{path}: y must hold non-negative integer class labels")
    return Dataset(_to_nchw(np.asarray(x), str(path)), y.astype(np.int64))


def _image_folder(path: Path) -> Dataset:
    from PIL import Image

    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise TinymcuError(f"{path}: an image folder needs one sub-folder per class")
    xs, ys = [], []
    for label, cdir in enumerate(classes):
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    xs.append(np.asarray(Image.open(f).convert("RGB")))
                except OSError as e:
                    raise TinymcuError(f"{f}: unreadable image ({e})") from e
                ys.append(label)
    if not xs:
        raise TinymcuError(f"{path}: no images found")
    if len({a.shape for a in xs}) != 1:
        raise TinymcuError(f"{path}: images differ in size; resize them to one size first")
    return Dataset(_to_nchw(np.stack(xs), str(path)), np.asarray(ys, dtype=np.int64))


@functools.lru_cache(maxsize=4)
def load(source: str) -> Dataset:
    """``digits``, a ``.npz`` path or an image folder path (cached: clients reload per message)."""
    if source == "digits":
        return _digits()
    path = Path(source)
    if not path.exists():
        raise TinymcuError(
            f"data not found: {source} (use 'digits', a .npz file or an image folder)")
    if path.is_dir():
        return _image_folder(path)
    if path.suffix == ".npz":
        return _npz(path)
    raise TinymcuError(f"{source}: unsupported data (use 'digits', a .npz file or an image folder)")


def train_test_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded split: the test part stays on the server for evaluation."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def partition(
    labels: np.ndarray, clients: int, alpha: float | None, seed: int, min_size: int = 2
) -> list[np.ndarray]:
    """Split sample indices over ``clients``: IID if ``alpha`` is None, else Dirichlet(α) per class.

    Non-IID draws each class's share per client from Dirichlet(α) (smaller α: more skew) and
    redraws until every client holds at least ``min_size`` samples, so no client is empty.
    """
    if clients < 1:
        raise TinymcuError(f"need at least one client, got {clients}")
    if len(labels) < clients * min_size:
        raise TinymcuError(f"{len(labels)} samples cannot feed {clients} clients")
    rng = np.random.default_rng(seed)
    if alpha is None:
        perm = rng.permutation(len(labels))
        return [np.sort(p) for p in np.array_split(perm, clients)]
    if alpha <= 0:
        raise TinymcuError(f"Dirichlet alpha must be > 0, got {alpha}")
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            shares = rng.dirichlet([alpha] * clients)
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for k, chunk in enumerate(np.split(idx, cuts)):
                parts[k].extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise TinymcuError(f"Dirichlet alpha={alpha} left a client with < {min_size} samples")


@dataclass(frozen=True)
class Split:
    """Everything a run needs to know to rebuild any client's data deterministically."""

    source: str
    clients: int
    alpha: float | None
    seed: int
    test_fraction: float = 0.2

    def _indices(self) -> tuple[np.ndarray, np.ndarray]:
        ds = load(self.source)
        return train_test_split(len(ds.y), self.test_fraction, self.seed)

    def client(self, pid: int) -> Dataset:
        ds = load(self.source)
        train, _ = self._indices()
        parts = _partitions(self.source, self.clients, self.alpha, self.seed, self.test_fraction)
        idx = train[parts[pid]]
        return Dataset(ds.x[idx], ds.y[idx])

    def test(self) -> Dataset:
        ds = load(self.source)
        _, test = self._indices()
        return Dataset(ds.x[test], ds.y[test])

    def train(self) -> Dataset:
        ds = load(self.source)
        train, _ = self._indices()
        return Dataset(ds.x[train], ds.y[train])


@functools.lru_cache(maxsize=8)
def _partitions(
    source: str, clients: int, alpha: float | None, seed: int, test_fraction: float
) -> list[np.ndarray]:
    ds = load(source)
    train, _ = train_test_split(len(ds.y), test_fraction, seed)
    return partition(ds.y[train], clients, alpha, seed)
