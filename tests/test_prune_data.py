"""Partitioning and dataset loading."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinymcu.errors import TinymcuError
from tinymcu.prune import data as D


@given(st.integers(1, 12), st.one_of(st.none(), st.floats(0.05, 10.0)), st.integers(0, 100))
@settings(max_examples=40, deadline=None)
def test_partition_assigns_every_sample_exactly_once(clients, alpha, seed):
    labels = np.random.default_rng(seed).integers(0, 10, 500)
    parts = D.partition(labels, clients, alpha, seed)
    assert len(parts) == clients
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(500))
    assert min(len(p) for p in parts) >= 2


def test_small_alpha_is_more_skewed_than_iid():
    labels = np.repeat(np.arange(10), 100)

    def skew(alpha):
        parts = D.partition(labels, 10, alpha, 0)
        return np.mean([np.bincount(labels[p], minlength=10).max() / len(p) for p in parts])

    assert skew(0.1) > skew(None) + 0.3


def test_digits_split_is_deterministic_and_disjoint():
    s = D.Split("digits", 5, 0.5, 3)
    assert s.client(2).x.shape[1:] == (1, 8, 8)
    np.testing.assert_array_equal(s.client(2).y, D.Split("digits", 5, 0.5, 3).client(2).y)
    total = sum(len(s.client(i).y) for i in range(5)) + len(s.test().y)
    assert total == 1797


def test_npz_nhwc_uint8_becomes_nchw_float(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(20) % 4)
    D.load.cache_clear()
    ds = D.load(str(tmp_path / "d.npz"))
    assert ds.x.shape == (20, 3, 6, 6) and ds.x.dtype == np.float32 and ds.x.max() <= 1.0
    assert ds.num_classes == 4


def test_image_folder(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.fromarray(np.full((5, 5, 3), i * 40, np.uint8)).save(tmp_path / c / f"{i}.png")
    ds = D.load(str(tmp_path))
    assert ds.x.shape == (6, 3, 5, 5) and ds.y.tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("content", [b"garbage", None])
def test_bad_data_is_one_clear_error(tmp_path, content):
    p = tmp_path / "bad.npz"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(TinymcuError):
        D.load(str(p))


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 8, 8)))
    with pytest.raises(TinymcuError, match="'x' and 'y'"):
        D.load(str(tmp_path / "x.npz"))


def test_builtin_mnist1d_and_animal_mnist_load_offline():
    m = D.load("mnist1d")
    assert m.x.shape == (5000, 1, 40) and m.x.dtype == np.float32 and m.num_classes == 10
    state = np.random.get_state()[1][:4].copy()
    D.load.cache_clear()
    m2 = D.load("mnist1d")  # generated again: identical, and the global RNG left alone
    np.testing.assert_array_equal(m.x, m2.x)
    np.testing.assert_array_equal(np.random.get_state()[1][:4], state)
    a = D.load("animal-mnist")
    assert a.x.shape == (10000, 1, 28, 28) and 0.0 <= a.x.min() and a.x.max() <= 1.0
    assert np.bincount(a.y).tolist() == [1000] * 10


def test_animal_mnist_reader_refuses_code_in_a_pickle():
    import gzip
    import io
    import pickle

    payload = pickle.dumps(print)  # a global that is not an ndarray
    with pytest.raises(pickle.UnpicklingError):
        D._NumpyOnly(io.BytesIO(gzip.decompress(gzip.compress(payload)))).load()
