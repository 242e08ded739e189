"""Weight schedules: conventions, shapes by their graphs, the lecture's formulas, grids, parsing errors."""

import json
import math

import pytest
import torch

from storylab.errors import StorylabError
from storylab.guidance import parse_schedule
from tests.cli_runner import run_cli

SHAPES = ["constant", "linear", "invlinear", "cosine", "sine", "v-shape", "lambda-shape", "pcs-mean:s=0.5",
          "pcs-mean:s=2"]


@pytest.mark.parametrize("spec", SHAPES)
@pytest.mark.parametrize("steps", [7, 50])
def test_every_shape_has_the_baseline_mean(spec, steps):
    scales = parse_schedule(spec).scales(steps, 4.0)
    assert scales.mean().item() == pytest.approx(4.0, abs=1e-9)


def _diffs(spec, steps=40):
    return torch.diff(parse_schedule(spec).scales(steps, 5.0))


@pytest.mark.parametrize("spec", ["linear", "cosine", "pcs:s=0.5", "pcs:s=1", "pcs:s=3", "pcs-mean:s=2"])
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
    for spec in SHAPES + ["pcs:s=1", "linear@paper", "interval:start=0.2,stop=0.7"]:
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
    (("--schedule", "interval:sigma_lo=1"), "depends on each step's noise level"),
    (("--grid", "odd"), "unknown step grid 'odd'"),
])
def test_guidance_weights_cli_rejects_bad_input_in_one_line(args, needle):
    out = _cli("guidance", "weights", *args, "--json")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in out.stderr


# --- the lecture's formulas, written out independently ------------------------------------------------
# Lecture (Wang et al. 2024): diffusion time t, t = T is noise; the sampler's k-th step (k = 1..T on the
# paper grid) evaluates the model at T - k, so (T - t)/T = k/T there; the endpoints grid has (T - t)/T = i/(N-1).


def lecture_pcs(progress, s, w):
    return [(1 - math.cos(math.pi * p ** s)) / 2 * w for p in progress]


@pytest.mark.parametrize("s", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("grid", ["endpoints", "paper"])
def test_pcs_is_the_lectures_formula_with_value_w_at_the_last_step(s, grid):
    n, scale = 9, 7.5
    w = scale - 1
    progress = [i / (n - 1) for i in range(n)] if grid == "endpoints" else [k / n for k in range(1, n + 1)]
    got = parse_schedule(f"pcs:s={s:g}@{grid}").strengths(n, w).tolist()
    assert got == pytest.approx(lecture_pcs(progress, s, w), abs=1e-12)
    assert got[-1] == pytest.approx(w)  # the last step has the full weight
    assert parse_schedule(f"pcs:s={s:g}@{grid}").scales(n, scale)[-1].item() == pytest.approx(scale)


def test_pcs_mean_is_the_normalised_variant():
    n, w = 11, 4.0
    raw = lecture_pcs([i / (n - 1) for i in range(n)], 2.0, 1.0)
    mean = sum(raw) / n
    assert parse_schedule("pcs-mean:s=2").strengths(n, w).tolist() == pytest.approx([w * r / mean for r in raw])


def _linear(t, T):
    return 1 - t / T


def _invlinear(t, T):
    return t / T


def test_v_and_lambda_are_the_lectures_compositions_of_linear_and_invlinear():
    n, w = 11, 6.0
    T = n - 1
    ts = [T - i for i in range(n)]  # endpoints grid: diffusion time T .. 0
    # V: invlinear while t >= T/2 (first half of sampling), linear after: high at both ends, half height mid.
    v = [_invlinear(t, T) if t >= T / 2 else _linear(t, T) for t in ts]
    lam = [_linear(t, T) if t >= T / 2 else _invlinear(t, T) for t in ts]
    for spec, raw in (("v-shape", v), ("lambda-shape", lam)):
        mean = sum(raw) / n
        assert parse_schedule(spec).strengths(n, w).tolist() == pytest.approx([w * r / mean for r in raw])
    got_v = parse_schedule("v-shape").strengths(n, w)
    assert got_v.min().item() == pytest.approx(got_v.max().item() / 2)  # minimum at half height


def test_paper_grid_reproduces_figure_1_clamp_linear_literally():
    w0, T = 14.0, 10
    expected = [max(1.0, w0 * 2 * t / T) for t in range(1, T + 1)]  # Figure 1: w = max(1, w0*2*t/T), t = 1..T
    assert parse_schedule("clamp:linear:c=1@paper").strengths(T, w0).tolist() == pytest.approx(expected)
    assert parse_schedule("clamp:linear:c=1", grid="paper").strengths(T, w0).tolist() == pytest.approx(expected)
    endpoints = parse_schedule("clamp:linear:c=1").strengths(T, w0).tolist()
    assert endpoints == pytest.approx([max(1.0, w0 * 2 * i / (T - 1)) for i in range(T)])


def test_diffusers_interval_matches_diffusers_guider_convention():
    from diffusers.guiders import ClassifierFreeGuidance

    for start, stop, n in [(0.0, 1.0, 10), (0.2, 0.8, 10), (0.25, 0.5, 9), (0.1, 0.35, 7), (0.5, 1.0, 5), (0.3, 0.3, 6)]:
        guider = ClassifierFreeGuidance(guidance_scale=3.0, start=start, stop=stop)
        official = []
        for i in range(n):
            guider.set_state(step=i, num_inference_steps=n, timestep=torch.tensor(0))
            official.append(3.0 if guider._is_cfg_enabled() else 1.0)
        ours = parse_schedule(f"diffusers-interval:start={start},stop={stop}").scales(n, 3.0).tolist()
        assert ours == official, (start, stop, n)


def test_sigma_interval_guides_where_lo_below_sigma_at_most_hi():
    sigmas = [80.0, 10.0, 2.9, 1.0, 0.28, 0.1, 0.002]
    w = parse_schedule("interval:sigma_lo=0.28,sigma_hi=2.9").strengths(7, 2.0, sigmas=sigmas).tolist()
    assert w == [2.0 if 0.28 < s <= 2.9 else 0.0 for s in sigmas] == [0, 0, 2, 2, 0, 0, 0]
    with pytest.raises(StorylabError, match="depends on the noise level"):
        parse_schedule("interval:sigma_lo=0.28,sigma_hi=2.9").strengths(7, 2.0)


def _spy_sampling(spec, steps=9, scale=4.0, sampler="ddim"):
    """Sample through Guided with a denoiser whose branches give eps_c = 1, eps_u = 0: the guided eps is the step's scale."""
    from storylab.diffusion import alphas_cumprod, beta_schedule, ddim_sample, edm_heun_sample
    from storylab.guidance import CFG, Guided

    def denoiser(x, t, cond):
        return cond.reshape(-1, 1).expand_as(x).clone()

    g = Guided(denoiser, torch.ones(1), rule=CFG(), scale=scale, uncond=torch.zeros(1), schedule=spec)
    seen = []

    def spy(ctx):
        out = g(ctx)
        seen.append((float(ctx.t[0]), ctx.sigma, float(out.eps.mean())))
        return out

    if sampler == "ddim":
        ab = alphas_cumprod(beta_schedule("linear", 1000))
        ddim_sample(spy, torch.zeros(1, 2), ab, num_steps=steps)
    else:
        edm_heun_sample(spy, torch.zeros(1, 2), num_steps=steps)
    return seen


@pytest.mark.parametrize("spec", ["linear", "pcs:s=2", "interval:start=0.1,stop=0.4", "v-shape@paper"])
def test_the_guided_model_applies_the_schedule_from_noise_to_data(spec):
    """Step order through Guided itself: the noisiest evaluation (largest t) gets the first weight."""
    n, scale = 9, 4.0
    seen = _spy_sampling(spec, n, scale)
    ts = [t for t, _, _ in seen]
    assert ts == sorted(ts, reverse=True)  # first call = noisiest
    w = scale - 1
    progress = [i / (n - 1) for i in range(n)]
    if spec == "linear":
        expected = [1 + w * 2 * p for p in progress]  # linear p, normalised by its mean 1/2
    elif spec == "pcs:s=2":
        expected = [1 + w * (1 - math.cos(math.pi * p ** 2)) / 2 for p in progress]
    elif spec.startswith("interval"):
        expected = [scale if 0.1 <= p <= 0.4 else 1.0 for p in progress]  # asymmetric: steps 1..3 only
        assert expected == [1, scale, scale, scale, 1, 1, 1, 1, 1]
    else:
        raw = [max(k / n, 1 - k / n) for k in range(1, n + 1)]
        expected = [1 + w * r / 0.75 for r in raw]  # the paper grid normalises by the mean of max(p, 1-p) on [0, 1]
    assert [e for _, _, e in seen] == pytest.approx(expected, abs=1e-6)  # float32 network outputs


def test_sigma_interval_reads_each_evaluations_noise_level_under_edm_heun():
    seen = _spy_sampling("interval:sigma_lo=0.28,sigma_hi=5", steps=8, scale=3.0, sampler="edm")
    assert len(seen) == 8 + 7  # Heun: two evaluations per step except the last
    for _, sigma, eps in seen:
        assert eps == pytest.approx(3.0 if 0.28 < sigma <= 5 else 1.0)
    assert any(e == pytest.approx(3.0) for *_, e in seen) and any(e == pytest.approx(1.0) for *_, e in seen)


def test_study_json_records_the_schedule_definition_version():
    from storylab.guidance import SCHEDULE_VERSION

    assert SCHEDULE_VERSION == 2  # version 2: literal pcs, V = max(p, 1 - p), grids, sigma intervals


@pytest.mark.parametrize("spec,message", [
    ("linear@weird", "unknown step grid 'weird'"),
    ("interval:start=0.1,sigma_hi=2", "either start/stop"),
    ("interval:sigma_lo=3,sigma_hi=2", "need 0 <= sigma_lo < sigma_hi"),
    ("diffusers-interval:sigma_lo=1", "unknown parameter 'sigma_lo'"),
    ("pcs-mean", "pcs-mean needs an exponent"),
    ("clamp:linear:c=-1", "clamp floor c must be >= 0"),
])
def test_new_spec_errors_name_the_problem(spec, message):
    with pytest.raises(StorylabError, match=message):
        parse_schedule(spec)


def test_guidance_weights_says_when_steps_fall_below_scale_one():
    low = _cli("guidance", "weights", "--schedule", "linear", "--scale", "0.5", "--steps", "4")
    # linear at 4 steps: 1 + (0.5 - 1) * 2p for p = 0, 1/3, 2/3, 1 -> 1, 2/3, 1/3, 0: three steps below 1
    assert low.returncode == 0 and "note: 3 step(s) below scale 1" in low.stdout and "ScheduledGuidance rejects" in low.stdout
    as_json = _cli("guidance", "weights", "--schedule", "linear", "--scale", "0.5", "--steps", "4", "--json")
    assert json.loads(as_json.stdout) == pytest.approx([1, 2 / 3, 1 / 3, 0]) and "note: 3 step(s)" in as_json.stderr
    high = _cli("guidance", "weights", "--schedule", "linear", "--scale", "3", "--steps", "4")
    assert high.returncode == 0 and "note:" not in high.stdout + high.stderr
