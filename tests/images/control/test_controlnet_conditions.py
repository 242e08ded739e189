"""Condition extractors and condition fidelity (issue 3, items 2 and 5)."""

import numpy as np
import pytest
import torch
from PIL import Image

from storylab.errors import StorylabError
from storylab.images.control.conditions import (KINDS, check_kind, condition_fidelity, extract, extract_batch, load_condition,
                                        load_gray_image, save_condition, tolerant_f1, zhang_suen_thinning)
from storylab.images.data.digits import load_digits_split


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


def strokes_64(dark_on_light: bool) -> np.ndarray:
    """A 64x64 hand drawing: a few 2-pixel strokes (pure black/white, no anti-aliasing)."""
    import cv2

    img = np.zeros((64, 64), dtype=np.uint8)
    cv2.line(img, (10, 12), (50, 20), 255, 2)
    cv2.line(img, (20, 50), (44, 8), 255, 2)
    cv2.circle(img, (32, 40), 12, 255, 2)
    return 255 - img if dark_on_light else img


def test_a_hand_drawn_condition_is_inverted_and_said_so(tmp_path):
    drawn, bright = tmp_path / "drawn.png", tmp_path / "bright.png"
    Image.fromarray(strokes_64(True)).save(drawn)
    Image.fromarray(strokes_64(False)).save(bright)
    stroke_share = float((strokes_64(False) > 127).mean())
    assert stroke_share < 0.2
    notes: list[str] = []
    reference = load_condition(bright, "scribble", report=notes.append)
    assert notes == []  # bright strokes on black are read as drawn
    auto = load_condition(drawn, "scribble", report=notes.append)
    assert torch.equal(auto, reference)  # the strokes, not the paper, are "on"
    assert len(notes) == 1 and "dark strokes on white paper" in notes[0] and "inverted" in notes[0]
    assert f"{100 * (1 - stroke_share):.1f}% of pixels bright" in notes[0]
    as_drawn = load_condition(drawn, "scribble", polarity="bright")
    assert float(as_drawn.mean()) > 0.8  # the silent misreading the auto mode prevents
    notes.clear()
    assert torch.equal(load_condition(drawn, "scribble", polarity="dark", report=notes.append), reference) and notes == []
    with pytest.raises(StorylabError, match="unknown condition polarity 'upside'"):
        load_condition(drawn, "scribble", polarity="upside")


def test_canny_is_the_controlnet_annotator_call_with_l2_as_an_option():
    import cv2

    gray = extract("mask", digit_rgb(3), size=32) * 0.6 + 0.2  # any 32x32 grey image
    u8 = np.round(gray * 255).astype(np.uint8)
    from storylab.images.control.conditions import canny_edges

    annotator = cv2.Canny(u8, 100, 200) > 0  # annotator/canny: cv2.Canny(img, low, high), OpenCV's L1 default
    np.testing.assert_array_equal(canny_edges(gray) > 0, annotator)
    np.testing.assert_array_equal(canny_edges(gray, l2_gradient=True) > 0, cv2.Canny(u8, 100, 200, L2gradient=True) > 0)
    digits = [extract("canny", digit_rgb(i)) for i in range(6)]
    l2 = [extract("canny", digit_rgb(i), l2_gradient=True) for i in range(6)]
    assert any(not np.array_equal(a, b) for a, b in zip(digits, l2))  # the option changes the edges


def test_dark_polarity_reads_a_drawing_as_controlnets_scribble_demo(tmp_path):
    # gradio_scribble2image.py: detected_map[np.min(img, axis=2) < 127] = 255 (a grey drawing: min = the grey level)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    img[img == 127] = 126  # 127 is the one level where "< 127" and our ">= 0.5 after inverting" part ways
    Image.fromarray(img).save(tmp_path / "grey.png")
    demo = img < 127
    ours = load_condition(tmp_path / "grey.png", "scribble", size=64, polarity="dark")[0, 0].numpy() > 0.5
    np.testing.assert_array_equal(ours, demo)
