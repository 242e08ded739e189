"""The rule-ranking study (`storylab evaluate <data> --rules ...`) on the tiny configuration."""

import json

import pytest

from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, save_digit_model
from storylab.images.networks.unet import UNetConfig
from storylab.images.study.rule_study import pareto_front
from tests.cli_runner import run_cli


def test_pareto_front_keeps_the_cells_no_other_beats_on_both():
    cells = [{"fid": 10, "adherence": 0.5}, {"fid": 8, "adherence": 0.6}, {"fid": 12, "adherence": 0.9},
             {"fid": 9, "adherence": 0.55}, {"fid": 13, "adherence": 0.9}]
    assert pareto_front(cells) == [1, 2]  # cell 0 and 3 are beaten by 1, cell 4 by 2


def test_rule_study_draws_every_rule_schedule_and_scale_on_the_same_seeds(tmp_path):
    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4))).eval()
    weak = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=4, emb_dim=8, groups=2))).eval()
    ckpt = save_digit_model(tmp_path / "tiny.safetensors", model)
    guide = save_digit_model(tmp_path / "weak.safetensors", weak)
    out = tmp_path / "study"
    res = run_cli("evaluate", "digits", "--checkpoint", ckpt, "--out", out, "--rules", "cfg,autoguidance,pag,fdg",
                  "--schedules", "constant;linear", "--scales", "1.5,2", "--per-class", "2", "--steps", "2",
                  "--guide-checkpoint", guide, "--rule-option", "fdg:low_scale=1.2")
    assert res.returncode == 0, res.stderr
    study = json.loads((out / "study.json").read_text())
    cells = study["cells"]
    assert len(cells) == 4 * 2 * 2 and study["n_fake"] == 20
    assert {(c["rule"], c["schedule"], c["scale"]) for c in cells} == {
        (r, s, x) for r in ("cfg", "autoguidance", "pag", "fdg") for s in ("constant", "linear") for x in (1.5, 2)}
    by = {(c["rule"], c["schedule"], c["scale"]): c for c in cells}
    assert by[("cfg", "constant", 2)]["nfe_per_sample"] == 4 and by[("cfg", "linear", 2)]["nfe_per_sample"] == 3
    assert by[("fdg", "constant", 2)]["options"] == {"low_scale": 1.2}
    assert all(c["seconds_per_image"] > 0 for c in cells)
    table = (out / "table.md").read_text()
    assert "n = 20 samples per cell" in table and "real vs real (n = 20)" in table
    assert table.count("\n| ") == 1 + 1 + len(cells)  # header, floor, one row per cell
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,needle", [
    (("--rules", "cfg,magic"), "unknown guidance 'magic'"),
    (("--rules", "cfg,cfg"), "--rules names 'cfg' twice"),
    (("--rules", "autoguidance"), "pass --guide-checkpoint"),
    (("--rules", "cfg", "--rule-option", "pag:cfg_scale=2"), "which --rules does not name"),
    (("--rules", "cfg", "--rule-option", "cfg:eta=1"), "guidance 'cfg' does not take option 'eta'"),
    (("--rules", "cfg", "--guidance", "classifier"), "--guidance and --rules both choose the rule"),
    (("--rule-option", "cfg:rescale=0.5"), "go with --rules"),
])
def test_rule_study_bad_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    model = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4))).eval()
    ckpt = save_digit_model(tmp_path / "tiny.safetensors", model)
    out = tmp_path / "study"
    res = run_cli("evaluate", "digits", "--checkpoint", ckpt, "--out", out, "--per-class", "1", "--steps", "1", *args)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert not out.exists()
