"""Every rule that needs a negative condition works wherever `storylab sample` accepts a rule.

The rules are found by the property ``needs_negative`` of the rules in RULES (not by name), and each
runs through the plain grid, the guidance-scale sweep and the nearest-training-image figure of
`sample digits`, and the grid and sweep of `sample fashion-mnist`.
"""

import numpy as np
import pytest
from PIL import Image

from storylab.guidance import RULES, make_rule
from tests.cli_runner import run_cli

NEGATIVE_RULES = [name for name in RULES if name != "classifier" and make_rule(name).needs_negative]
FIGURES = {"grid": [], "sweep": ["--sweep-scale", "0:2:2"], "nearest": ["--nearest", "1"]}
# the nearest figure of fashion-mnist searches 60,000 training images: minutes on a shared CPU
CASES = [(data, fig) for data in ("digits", "fashion-mnist") for fig in FIGURES
         if not (data == "fashion-mnist" and fig == "nearest")]


def sample(tmp_path, data, name, *args):
    out = tmp_path / f"{name}.png"
    r = run_cli("sample", data, "--classes", "3,7", "--per-class", "1", "--steps", "2", "--no-progress",
                "--out", out, *args)
    return r, out


def pixels(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.int16)


def test_negative_and_negative3_are_the_rules_with_a_negative_branch():
    assert {"negative", "negative3"} <= set(NEGATIVE_RULES)
    assert not make_rule("cfg").needs_negative


@pytest.mark.parametrize("data,figure", CASES)
@pytest.mark.parametrize("rule", NEGATIVE_RULES)
def test_a_negative_rule_draws_every_figure_and_needs_a_negative_class(tmp_path, rule, data, figure):
    r, out = sample(tmp_path, data, "ok", "--guidance", rule, "--negative-class", "1", *FIGURES[figure])
    assert r.returncode == 0, r.stderr
    assert out.exists() and r.stdout.strip().splitlines()[-1].startswith(f"wrote {out}")
    r, bad = sample(tmp_path, data, "bad", "--guidance", rule, *FIGURES[figure])
    assert r.returncode == 2 and not bad.exists()
    assert r.stderr.strip() == f"error: --guidance {rule} needs --negative-class between 0 and 9"


@pytest.mark.parametrize("data", ["digits", "fashion-mnist"])
def test_negative3_with_negative_scale_zero_is_cfg_and_the_negative_class_acts(tmp_path, data):
    # eps_u + s (eps_c - eps_u) - s_n (eps_neg - eps_u) with s_n = 0 is CFG's eps_u + s (eps_c - eps_u)
    common = ["--scale", "2"]
    cfg = sample(tmp_path, data, "cfg", "--guidance", "cfg", *common)[1]
    zero = sample(tmp_path, data, "zero", "--guidance", "negative3", "--negative-class", "1", "--negative-scale", "0",
                  *common)[1]
    one = sample(tmp_path, data, "one", "--guidance", "negative3", "--negative-class", "1", "--negative-scale", "1",
                 *common)[1]
    other = sample(tmp_path, data, "other", "--guidance", "negative3", "--negative-class", "5", "--negative-scale", "1",
                   *common)[1]
    assert np.abs(pixels(zero) - pixels(cfg)).max() <= 1  # the same sample up to rounding of a batched call
    assert np.abs(pixels(one) - pixels(cfg)).max() > 8
    assert np.abs(pixels(one) - pixels(other)).max() > 8
