"""Datasets and how they are split over federated clients.

A dataset is two numpy arrays: ``x`` float32 (N, C, H, W) images or (N, C, L) sequences and
``y`` int64 labels. Built-in sources, none of which downloads anything: ``digits`` (sklearn, 8×8),
``mnist1d`` (MNIST-1D generated offline by the ``mnist1d`` package, 5,000 length-40 sequences)
and ``animal-mnist`` (10,000 28×28 animal silhouettes shipped inside the ``animal-mnist``
wheel). Otherwise a user ``.npz`` with ``x`` and ``y`` (NHWC or NCHW; uint8 is scaled to [0, 1])
or an image folder (one sub-folder per class). Every client derives its own partition from
(source, clients, alpha, seed), so no data ever travels over Flower; a real SuperNode can
instead train on its own files (``data-path`` in its node config, :func:`load`).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import pickle
import random
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


BUILTIN = ("digits", "mnist1d", "animal-mnist")


def _mnist1d() -> Dataset:
    """MNIST-1D with the package's default arguments (seed 42), generated in memory.

    ``make_dataset`` is the offline generator (``get_dataset`` would download). It reseeds the
    global ``random``/``numpy`` generators, so their state is restored afterwards. Its own
    80/20 split is joined back: our seeded train/test split applies as for every source.
    """
    try:
        from mnist1d.data import make_dataset
    except ImportError as e:
        raise TinymcuError("--data mnist1d needs the mnist1d package "
                           "(pip install 'tinymcu[federated]')") from e
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset()
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)[:, None, :]
    return Dataset(x, np.concatenate([d["y"], d["y_test"]]).astype(np.int64))


class _NumpyOnly(pickle.Unpickler):
    """The animal-mnist files are gzipped pickles of two ndarrays: allow only what rebuilds an
    ndarray, so a tampered file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name} in a data file")
        return super().find_class(module, name)


def _animal_mnist() -> Dataset:
    """Animal-MNIST read straight from the wheel's files (its loader imports TensorFlow)."""
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise TinymcuError("--data animal-mnist needs the animal-mnist package "
                           "(pip install --no-deps animal-mnist==0.4)")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "Animal_MNIST"
    arrays = []
    for name in ("animal_data_version_3.gz", "animal_label_version_3.gz"):
        try:
            with gzip.open(root / name, "rb") as f:
                arrays.append(np.asarray(_NumpyOnly(f).load()))
        except (OSError, pickle.UnpicklingError, EOFError) as e:
            raise TinymcuError(f"{root / name}: unreadable animal-mnist file ({e})") from e
    x, y = arrays
    return Dataset(_to_nchw(x.astype(np.uint8), "animal-mnist"), y.astype(np.int64))


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
    """A built-in name, a ``.npz`` path or an image folder path (cached: clients reload per
    message)."""
    if source == "digits":
        return _digits()
    if source == "mnist1d":
        return _mnist1d()
    if source == "animal-mnist":
        return _animal_mnist()
    path = Path(source)
    if not path.exists():
        raise TinymcuError(
            f"data not found: {source} (use {', '.join(BUILTIN)}, a .npz file or an image folder)")
    if path.is_dir():
        return _image_folder(path)
    if path.suffix == ".npz":
        return _npz(path)
    raise TinymcuError(f"{source}: unsupported data (use {', '.join(BUILTIN)}, a .npz file or an "
                       "image folder)")


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
