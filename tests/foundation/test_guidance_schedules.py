"""Weight schedules: conventions, shapes by their graphs, mean normalisation, parsing errors."""

import json

import pytest
import torch

from storylab.errors import StorylabError
from storylab.guidance import parse_schedule
from tests.cli_runner import run_cli

SHAPES = ["constant", "linear", "invlinear", "cosine", "sine", "v-shape", "lambda-shape", "pcs:s=0.5", "pcs:s=2"]


@pytest.mark.parametrize("spec", SHAPES)
@pytest.mark.parametrize("steps", [7, 50])
def test_every_shape_has_the_baseline_mean(spec, steps):
    scales = parse_schedule(spec).scales(steps, 4.0)
    assert scales.mean().item() == pytest.approx(4.0, abs=1e-9)


def _diffs(spec, steps=40):
    return torch.diff(parse_schedule(spec).scales(steps, 5.0))


@pytest.mark.parametrize("spec", ["linear", "cosine", "pcs:s=0.5", "pcs:s=1", "pcs:s=3"])
def test_increasing_shapes_grow_from_noise_to_data(spec):
    d = _diffs(spec)
    assert torch.all(d >= -1e-12) and d.sum() > 0


@pytest.mark.parametrize("spec", ["invlinear", "sine"])
def test_decreasing_shapes_shrink_from_noise_to_data(spec):
    d = _diffs(spec)
    assert torch.all(d <= 1e-12) and d.sum() < 0


def test_v_shape_is_high_at_both_ends_and_lambda_peaks_in_the_middle():
    v = parse_schedule("v-shape").scales(41, 5.0)
    lam = parse_schedule("lambda-shape").scales(41, 5.0)
    assert v.argmin().item() == 20 and v[0] == v.max() and v[-1] == v.max()
    assert lam.argmax().item() == 20 and lam[0] == lam.min() and lam[-1] == lam.min()


def test_linear_starts_purely_conditional():
    scales = parse_schedule("linear").scales(10, 3.0)
    assert scales[0].item() == pytest.approx(1.0)  # shape 0 => w = 0 => conditional
    assert scales[-1].item() == pytest.approx(5.0)  # 2 * (scale - 1) + 1: the paper's factor 2


def test_clamp_floors_w_at_c():
    w = parse_schedule("clamp:linear:c=2").strengths(10, 2.0)
    assert torch.all(w >= 2.0)
    unclamped = parse_schedule("linear").strengths(10, 2.0)
    assert torch.allclose(w, unclamped.clamp(min=2.0))


def test_interval_guides_only_inside_the_band():
    scales = parse_schedule("interval:start=0.25,stop=0.5").scales(9, 3.0)  # progress 0, .125, ..., 1
    assert scales.tolist() == [1, 1, 3, 3, 3, 1, 1, 1, 1]


def test_scale_one_is_conditional_for_every_shape():
    for spec in SHAPES:
        assert torch.allclose(parse_schedule(spec).scales(12, 1.0), torch.ones(12, dtype=torch.float64))


@pytest.mark.parametrize("spec,message", [
    ("wobbly", "unknown schedule 'wobbly'"),
    ("pcs:s=-1", "pcs exponent s must be > 0"),
    ("pcs", "pcs needs an exponent"),
    ("clamp:c=abc", "expected clamp:<shape>:c=<floor>"),
    ("clamp:linear:c=abc", "c must be a number, got 'abc'"),
    ("interval:start=0.8,stop=0.2", "need 0 <= start <= stop <= 1"),
    ("linear:s=1", "'linear' takes no parameters"),
])
def test_malformed_specs_name_the_problem(spec, message):
    with pytest.raises(StorylabError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_schedule(spec)


def test_negative_scale_is_rejected():
    with pytest.raises(StorylabError, match="guidance scale must be"):
        parse_schedule("constant").scales(5, -0.5)


def _cli(*args):
    return run_cli(*args)


def test_guidance_weights_cli_prints_json_in_sampling_order():
    out = _cli("guidance", "weights", "--schedule", "clamp:linear:c=2", "--scale", "3", "--steps", "5", "--json")
    assert out.returncode == 0, out.stderr
    values = json.loads(out.stdout)
    assert values == pytest.approx(parse_schedule("clamp:linear:c=2").scales(5, 3.0).tolist())
    assert values[0] <= values[-1]


@pytest.mark.parametrize("args,needle", [
    (("--schedule", "pcs:s=-1"), "pcs exponent"),
    (("--schedule", "clamp:c=abc"), "clamp"),
    (("--scale", "-1"), "Invalid value for '--scale'"),
])
def test_guidance_weights_cli_rejects_bad_input_in_one_line(args, needle):
    out = _cli("guidance", "weights", *args, "--json")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in out.stderr
