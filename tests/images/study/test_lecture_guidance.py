"""Wang et al. 2024's guidance-removal experiment and Figure 1's loops, on the tiny configuration."""

import json

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, save_digit_model
from storylab.images.networks.unet import UNetConfig
from storylab.images.study.lecture_guidance import code_slide_loops, removal_windows
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4))).eval()
    return save_digit_model(tmp_path_factory.mktemp("ck") / "tiny.safetensors", model)


def test_removal_windows_are_prefixes_suffixes_and_cut_sliding_windows():
    windows = removal_windows(3, 0.6)
    by = {(w["family"], w["at"]): (w["start"], w["stop"]) for w in windows}
    assert by[("prefix", 0.5)] == (0.0, 0.5) and by[("suffix", 0.25)] == (0.25, 1.0)
    assert by[("window", 0.25)] == (0.0, pytest.approx(0.55)) and by[("window", 0.75)] == (pytest.approx(0.45), 1.0)
    assert {w["schedule"] for w in windows if w["at"] == 0.5} == {"remove:start=0,stop=0.5", "remove:start=0.5,stop=1",
                                                                  "remove:start=0.2,stop=0.8"}


def test_guidance_removal_sweep_removes_each_window_and_keeps_the_seeds(tmp_path, tiny_ckpt):
    out = tmp_path / "removal"
    res = run_cli("evaluate", "guidance-removal", "--checkpoint", tiny_ckpt, "--out", out, "--scales", "2,3",
                  "--points", "1", "--per-class", "2", "--steps", "4")
    assert res.returncode == 0, res.stderr
    study = json.loads((out / "study.json").read_text())
    assert len(study["cells"]) == 2 * (1 + 3) and study["n_fake"] == 20
    p = np.linspace(0, 1, 4)  # the endpoints grid of 4 steps
    for c in study["cells"]:
        removed = 0 if c["family"] == "none" else int(((p >= c["start"]) & (p <= c["stop"])).sum())
        assert c["nfe_per_sample"] == removed + 2 * (4 - removed), c
    assert "| nothing (constant CFG) | 2 |" in (out / "table.md").read_text()
    assert (out / "removal.png").read_bytes()[:4] == b"\x89PNG"


def test_code_slide_loops_are_figure_1_in_hos_convention(tmp_path, tiny_ckpt):
    loops = code_slide_loops(3.0)
    assert [(x["scale"], x["schedule"]) for x in loops] == [(3.0, "constant"), (15.0, "constant"),
                                                            (4.0, "clamp:linear:c=1@paper")]
    out = tmp_path / "loops"
    steps = 5
    res = run_cli("evaluate", "code-slide-loops", "--checkpoint", tiny_ckpt, "--out", out, "--w0", "3",
                  "--per-class", "2", "--steps", str(steps), "--show", "2")
    assert res.returncode == 0, res.stderr
    cells = json.loads((out / "study.json").read_text())["cells"]
    t = np.arange(1, steps + 1)  # Figure 1: w_t = max(1, w0 * 2 * t / T), scale = w + 1
    assert cells[2]["mean_scale"] == pytest.approx(np.mean(1 + np.maximum(1, 3.0 * 2 * t / steps)))
    assert [c["mean_scale"] for c in cells[:2]] == pytest.approx([3.0, 15.0])
    assert (out / "loops.png").read_bytes()[:4] == b"\x89PNG"
    bad = run_cli("evaluate", "code-slide-loops", "--checkpoint", tiny_ckpt, "--out", tmp_path / "bad", "--w0", "0.5")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: Invalid value for '--w0'")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(StorylabError, match=r"^--w0 must be >= 1 \(the clamp floors w at 1\), got 0.5$"):
        code_slide_loops(0.5)
