"""ControlNet commands: extract, train (tiny), sample with --control, evaluate, and every kind of bad input."""

import json
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from storylab.cli import main
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, save_digit_model
from storylab.images.networks.unet import UNetConfig
from storylab.training import load_checkpoint

TINY = DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4), num_timesteps=100)


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the storylab CLI in-process; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["storylab", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cn")
    torch.manual_seed(0)
    save_digit_model(root / "base.safetensors", DigitDiffusion(TINY))
    torch.manual_seed(1)
    save_digit_model(root / "other.safetensors", DigitDiffusion(TINY))
    digit = ((np.kron(np.eye(8)[::-1] + np.eye(8), np.ones((5, 5))) > 0) * 255).astype(np.uint8)
    Image.fromarray(np.stack([digit] * 3, -1)).save(root / "digit.png")
    return root


@pytest.fixture(scope="module")
def trained(setup):
    """A ControlNet trained for a few steps on the tiny base, through the CLI."""
    mp = pytest.MonkeyPatch()
    out, plot = setup / "cn.safetensors", setup / "convergence.png"
    mp.setattr(sys, "argv", ["storylab", "train", "controlnet", "--condition", "edges", "--base", str(setup / "base.safetensors"),
                             "--out", str(out), "--plot", str(plot), "--steps", "6", "--batch-size", "16",
                             "--eval-every", "3", "--eval-count", "6", "--lr", "1e-3", "--no-progress", "--no-resume"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        mp.undo()
    return out


def test_extract_writes_each_kind(setup, monkeypatch, capsys):
    for kind in ("canny", "sobel", "scribble", "mask", "depth"):
        out = setup / f"{kind}.png"
        code, stdout, _ = run(monkeypatch, capsys, "control", "extract", kind, str(setup / "digit.png"), "--out", str(out))
        assert code == 0 and "wrote" in stdout
        assert Image.open(out).size == (32, 32)


def test_train_records_curve_base_identity_and_plot(setup, trained):
    ckpt = load_checkpoint(trained)
    assert ckpt.kind == "digits-controlnet" and len(ckpt.config["base_sha256"]) == 64
    assert [p["step"] for p in ckpt.extra["fidelity"]] == [0, 3, 6]
    assert ckpt.extra["command"].startswith("storylab train controlnet")
    assert (setup / "convergence.png").stat().st_size > 0
    assert any(k.startswith("mid_zero_conv") and v.abs().sum() > 0 for k, v in ckpt.state_dict.items())


def test_sample_with_controls(setup, trained, monkeypatch, capsys):
    run(monkeypatch, capsys, "control", "extract", "canny", str(setup / "digit.png"), "--out", str(setup / "edges.png"))
    out = setup / "s.png"
    code, stdout, err = run(monkeypatch, capsys, "sample", "digits", "--checkpoint", str(setup / "base.safetensors"),
                            "--out", str(out), "--classes", "none", "--per-class", "3", "--steps", "3",
                            "--control", f"{trained}={setup / 'edges.png'}:1.5:0:0.8",
                            "--control", f"{trained}={setup / 'edges.png'}:0.5", "--control-uncond")
    assert code == 0, err
    assert out.exists()


@pytest.mark.parametrize("control, message", [
    ("{cn}={dir}/text.png", "not a readable image"),
    ("{cn}={dir}/empty.png", "empty"),
    ("hed={dir}/edges.png", "unknown condition kind"),
    ("{cn}={dir}/edges.png:-1", "scale must be >= 0"),
    ("{cn}={dir}/edges.png:1:0.8:0.2", "start must be <= end"),
    ("{cn}", "KIND=PATH"),
])
def test_bad_control_is_one_line_and_writes_nothing(setup, trained, monkeypatch, capsys, control, message):
    (setup / "text.png").write_text("not an image")
    (setup / "empty.png").write_bytes(b"")
    run(monkeypatch, capsys, "control", "extract", "canny", str(setup / "digit.png"), "--out", str(setup / "edges.png"))
    out = setup / "bad.png"
    code, _, err = run(monkeypatch, capsys, "sample", "digits", "--checkpoint", str(setup / "base.safetensors"), "--out",
                       str(out), "--steps", "2", "--per-class", "1", "--control", control.format(cn=trained, dir=setup))
    assert code != 0 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_controlnet_for_another_base_is_refused(setup, trained, monkeypatch, capsys):
    out = setup / "other.png"
    code, _, err = run(monkeypatch, capsys, "sample", "digits", "--checkpoint", str(setup / "other.safetensors"), "--out",
                       str(out), "--steps", "2", "--control", f"{trained}={setup / 'digit.png'}")
    assert code != 0 and "another base model" in err and not out.exists()


def test_extract_bad_input(setup, monkeypatch, capsys):
    (setup / "text.png").write_text("not an image")
    for args, message in ((["canny", str(setup / "text.png")], "not a readable image"),
                          (["hed", str(setup / "digit.png")], "unknown condition kind"),
                          (["canny", str(setup / "nope.png")], "not found")):
        out = setup / "never.png"
        code, _, err = run(monkeypatch, capsys, "control", "extract", *args, "--out", str(out))
        assert code != 0 and message in err and not out.exists()


def test_evaluate_prints_table_and_writes_results(setup, trained, monkeypatch, capsys):
    out = setup / "eval"
    with warnings.catch_warnings():
        # 4 conditions leave no class with two samples: no "Mean of empty slice" (within-class diversity is NaN)
        warnings.simplefilter("error", RuntimeWarning)
        code, stdout, err = run(monkeypatch, capsys, "evaluate", "controlnet", "--base", str(setup / "base.safetensors"),
                                "--controlnets", f"canny={trained}", "--scales", "0,1", "--count", "4", "--steps", "2",
                                "--out", str(out), "--no-progress")
    assert code == 0, err
    written = json.loads((out / "results.json").read_text())
    results = written["results"]
    assert written["control_uncond"] is True and "unconditional branch controlled" in stdout  # the references' default
    assert [(r["class"], r["scale"]) for r in results] == [("class", 0.0), ("class", 1.0), ("none", 0.0), ("none", 1.0)]
    assert all(np.isfinite([r["fidelity"], r["fid"], r["fid_floor"], r["adherence"]]).all() for r in results)
    assert "ControlNet evaluation" in stdout and (out / "convergence.png").exists()
    assert stdout.strip().splitlines()[-1] == f"wrote {out}/results.json, convergence.png"


def test_within_class_diversity_without_two_samples_of_a_class_is_nan_without_warning():
    from storylab.images.study.study import _cell, within_class_diversity

    feats = torch.randn(6, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        vendi, pairwise = within_class_diversity(feats[:3], torch.tensor([0, 1, 2]))
        assert np.isnan(vendi) and np.isnan(pairwise) and _cell(vendi) == "n/a"
        vendi, pairwise = within_class_diversity(feats, torch.tensor([0, 0, 1, 2, 2, 2]))  # classes 0 and 2 count
        assert np.isfinite(vendi) and pairwise > 0 and _cell(pairwise) == f"{pairwise:.3f}"


def test_a_drawing_on_white_paper_is_inverted_with_a_note(setup, trained, monkeypatch, capsys):
    strokes = np.full((64, 64), 255, dtype=np.uint8)
    strokes[10:54, 30:33] = 0  # a black stroke on white paper
    Image.fromarray(strokes).save(setup / "drawn.png")
    out = setup / "drawn_samples.png"
    code, _, err = run(monkeypatch, capsys, "sample", "digits", "--checkpoint", str(setup / "base.safetensors"), "--out", str(out),
                       "--classes", "none", "--per-class", "2", "--steps", "2", "--control", f"{trained}={setup / 'drawn.png'}")
    assert code == 0 and out.exists()
    assert "looks like dark strokes on white paper" in err and "inverted" in err
    code, _, err = run(monkeypatch, capsys, "sample", "digits", "--checkpoint", str(setup / "base.safetensors"), "--out", str(out),
                       "--classes", "none", "--per-class", "2", "--steps", "2", "--control", f"{trained}={setup / 'drawn.png'}",
                       "--control-polarity", "bright")
    assert code == 0 and "inverted" not in err
