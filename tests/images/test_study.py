"""`storylab evaluate digits` end to end on a tiny model: n in the table, the FID warning, the actual mean scale, the floor."""

import json

import numpy as np
import pytest

from storylab.images.denoiser import DigitDiffusion, DigitDiffusionConfig, save_digit_model
from storylab.images.study import actual_mean_scale
from storylab.images.unet import UNetConfig
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
