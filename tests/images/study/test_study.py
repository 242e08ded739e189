"""`storylab evaluate digits` end to end on a tiny model: n in the table, the FID warning, the actual mean scale, the floor."""

import json

import numpy as np
import pytest

from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, save_digit_model
from storylab.images.study.study import actual_mean_scale
from storylab.images.networks.unet import UNetConfig
from storylab.guidance import Guided, make_rule
from tests.cli_runner import run_cli


def test_actual_mean_scale_of_a_clamped_schedule_is_what_it_applies():
    # clamp:linear:c=2 at nominal 1.5: w_i = 0.5 * linear shape (mean 1, so at most ~1) < 2, clamped to 2 at
    # every step, i.e. the scale 1 + 2 = 3 everywhere.
    guided = Guided(lambda x, t, c: x, None, rule=make_rule("cfg"), scale=1.5, schedule="clamp:linear:c=2")
    assert actual_mean_scale(guided, 10) == pytest.approx(3.0)
    # an unclamped schedule keeps its nominal mean
    for spec in ("constant", "linear", "cosine"):
        guided = Guided(lambda x, t, c: x, None, rule=make_rule("cfg"), scale=4.0, schedule=spec)
        assert actual_mean_scale(guided, 25) == pytest.approx(4.0)


def test_evaluate_digits_tiny_study_reports_n_floor_spread_warning_and_mean_scale(tmp_path):
    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4)))
    ckpt = save_digit_model(tmp_path / "tiny.safetensors", model.eval())
    out = tmp_path / "study"
    result = run_cli("evaluate", "digits", "--checkpoint", ckpt, "--out", out, "--schedules", "constant;clamp:linear:c=2",
                     "--scales", "1.5", "--per-class", "3", "--steps", "2")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "warning: FID at n = 30 is not meaningful for 64-dimensional features" in text
    assert "n = 30 samples per cell" in text and "real vs real (n = 30)" in text
    study = json.loads((out / "study.json").read_text())
    assert study["n_fake"] == 30 and study["n_real"] == 360 and study["feature_dim"] == 64
    by_spec = {c["schedule"]: c for c in study["cells"]}
    assert by_spec["constant"]["mean_scale"] == pytest.approx(1.5)
    assert by_spec["clamp:linear:c=2"]["mean_scale"] == pytest.approx(3.0)
    floor = study["real_vs_real"]
    values = study["floor_fid_values"]
    assert floor["n_fake"] == 30 and len(values) == 10
    assert floor["fid"] == pytest.approx(np.mean(values)) and floor["fid_std"] == pytest.approx(np.std(values, ddof=1))
    for name in ("fid_vs_adherence.png", "diversity_vs_adherence.png", "fid_recall_vs_scale.png", "weights.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_shipped_fashion_mnist_reference_scores_without_the_data(monkeypatch, tmp_path):
    """The metrics' real side ships as features, not images: no data package is needed to score samples."""
    import torch

    from storylab.images.assets import shipped
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.data.reference import read_reference
    from storylab.images.study.study import real_reference, score_samples

    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))
    ref = read_reference(shipped("fashion-mnist", "reference"))
    assert ref.test_count == 10_000 and ref.dim == 64 and ref.test_cov.shape == (64, 64)
    assert np.bincount(ref.test_labels).tolist() == [100] * 10 and np.bincount(ref.pool_labels).tolist() == [250] * 10
    net = load_digit_feature_net(data="fashion-mnist")
    out = real_reference(net, 40, data="fashion-mnist", repeats=3)
    assert out["n_real"] == 10_000 and out["n_floor"] == 40 and out["floor"]["fid_std"] > 0
    images = torch.rand(20, 1, 28, 28) * 2 - 1
    scores = score_samples(images, torch.arange(10).repeat(2), net, out["test_feats"], out["stats"])
    assert scores["n_real"] == 10_000 and 0 <= scores["adherence"] <= 1 and scores["fid"] > out["floor"]["fid"]


def test_sample_cell_batch_k_draws_the_noise_of_seed_plus_k():
    import torch

    from storylab.images.networks.denoiser import DEFAULT_SAMPLER, sample_digits
    from storylab.images.study.study import sample_cell

    torch.manual_seed(0)
    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4))).eval()
    labels = torch.tensor([0, 1, 2, 3, 4])
    one, mean_scale, nfe = sample_cell(model, labels, "cfg", 3.0, "linear", 2, 7, batch_size=5)
    assert torch.equal(one, sample_digits(model, labels, "cfg", 3.0, "linear", DEFAULT_SAMPLER, 2, 7))  # one batch: seed itself
    assert mean_scale == pytest.approx(3.0) and nfe == 2 + 1  # linear's first scale is 1: no unconditional pass there
    parts, _, _ = sample_cell(model, labels, "cfg", 3.0, "linear", 2, 7, batch_size=2)
    expected = torch.cat([sample_digits(model, labels[0:2], "cfg", 3.0, "linear", DEFAULT_SAMPLER, 2, 7),
                          sample_digits(model, labels[2:4], "cfg", 3.0, "linear", DEFAULT_SAMPLER, 2, 8),
                          sample_digits(model, labels[4:5], "cfg", 3.0, "linear", DEFAULT_SAMPLER, 2, 9)])
    assert parts.shape == (5, 1, 8, 8) and torch.equal(parts, expected)
    assert not torch.equal(parts, one)  # different batches draw different noise


def test_guidance_panel_draws_fashion_mnist_from_the_shipped_model_with_its_class_names():
    from storylab.images.commands.panel import DATASETS, guidance_grid

    assert list(DATASETS) == ["digits", "fashion-mnist"]
    r = guidance_grid("fashion-mnist", steps=1, per_class=1)
    assert r.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                             "Bag", "Ankle boot"]
    # 10 rows of 28x28 tiles zoomed to 56 px (48 px target) with 2 px gaps, one column
    assert r.image.shape == (10 * (56 + 2) + 2, 56 + 2 + 2) and r.samples.shape == (10, 28, 28)
