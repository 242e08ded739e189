"""Condition extractors and condition fidelity (issue 3, items 2 and 5)."""

import numpy as np
import pytest
import torch
from PIL import Image

from storylab.errors import StorylabError
from storylab.images.conditions import (KINDS, check_kind, condition_fidelity, extract, extract_batch, load_condition,
                                        load_gray_image, save_condition, tolerant_f1, zhang_suen_thinning)
from storylab.images.digits import load_digits_split


def digit_rgb(index: int = 0, size: int = 40, dark_on_light: bool = False) -> np.ndarray:
    """A test digit as an RGB uint8 image of any size (optionally black ink on white paper)."""
    img = ((load_digits_split("test").images[index, 0] + 1) / 2).numpy()
    big = np.asarray(Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
    if dark_on_light:
        big = 255 - big
    return np.stack([big] * 3, axis=-1)


@pytest.mark.parametrize("kind", KINDS)
def test_every_extractor_handles_gray_rgb_any_size_and_polarity(kind):
    a = extract(kind, digit_rgb(size=40))
    b = extract(kind, digit_rgb(size=40)[..., 0])
    c = extract(kind, digit_rgb(size=40, dark_on_light=True))
    d = extract(kind, digit_rgb(size=200), size=32)
    assert a.shape == d.shape == (32, 32) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1 and a.max() > 0
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert extract(kind, digit_rgb(), size=64).shape == (64, 64)


def test_binary_kinds_are_binary_and_aliases_resolve():
    for kind in ("canny", "scribble", "mask"):
        values = set(np.unique(extract(kind, digit_rgb())).tolist())
        assert values <= {0.0, 1.0}
    assert check_kind("Edges") == "canny" and check_kind("depth") == "distance"
    with pytest.raises(StorylabError, match="unknown condition kind 'hed'"):
        check_kind("hed")


def test_scribble_jitter_is_seeded_and_skeleton_is_thin():
    img = digit_rgb()
    assert np.array_equal(extract("scribble", img, seed=1), extract("scribble", img, seed=1))
    assert not np.array_equal(extract("scribble", img, seed=1), extract("scribble", img, seed=2))
    bar = np.zeros((20, 20), dtype=np.uint8)
    bar[8:13, 3:17] = 1  # a 5-pixel-thick horizontal stroke
    skeleton = zhang_suen_thinning(bar)
    assert skeleton.sum() > 5 and skeleton.sum(axis=0).max() == 1  # one pixel thick everywhere


def test_tolerant_f1():
    a = np.zeros((16, 16))
    a[5, 2:12] = 1
    shifted = np.roll(a, 1, axis=0)
    far = np.roll(a, 6, axis=0)
    assert tolerant_f1(a, a, 0) == 1.0
    assert tolerant_f1(shifted, a, 0) == 0.0 and tolerant_f1(shifted, a, 1.0) == 1.0
    assert tolerant_f1(far, a, 1.0) == 0.0
    assert tolerant_f1(np.zeros_like(a), np.zeros_like(a)) == 1.0 and tolerant_f1(np.zeros_like(a), a) == 0.0


@pytest.mark.parametrize("kind", KINDS)
def test_fidelity_is_perfect_on_the_source_and_worse_on_other_digits(kind):
    data = load_digits_split("test")
    images = data.images[:12]
    conds = extract_batch(kind, images, seed=None if kind == "scribble" else 0)
    same = condition_fidelity(kind, images, conds)
    other = condition_fidelity(kind, data.images[12:24], conds)
    if same.higher_is_better:
        assert same.metric == "F1" and same.mean == 1.0 and other.mean < 0.9
    else:
        assert same.metric == "RMSE" and same.mean == 0.0 and other.mean > 0.05


def test_condition_files_round_trip_and_bad_files(tmp_path):
    cond = extract("canny", digit_rgb())
    path = save_condition(cond, tmp_path / "c.png")
    assert torch.equal(load_condition(path, "canny"), torch.from_numpy(cond)[None, None])
    big = tmp_path / "big.png"
    Image.fromarray((np.kron(cond, np.ones((4, 4))) * 255).astype(np.uint8)).save(big)
    assert load_condition(big, "canny").shape == (1, 1, 32, 32)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(StorylabError, match="not a readable image"):
        load_gray_image(tmp_path / "text.png")
    with pytest.raises(StorylabError, match="empty"):
        load_gray_image(tmp_path / "empty.png")
    with pytest.raises(StorylabError, match="not found"):
        load_gray_image(tmp_path / "missing.png")
