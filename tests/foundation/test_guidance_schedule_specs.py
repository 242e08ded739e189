"""Schedule SPECs users ask for: piecewise, per-step lists, decreasing pcs, removed windows, the slide's V/Λ reading."""

import math

import numpy as np
import pytest
import torch

from storylab.diffusion import StepContext
from storylab.errors import StorylabError
from storylab.guidance import Guided, make_rule, parse_schedule


def test_piecewise_in_steps_is_stable_diffusion_cpp_syntax():
    scales = parse_schedule("piecewise:3x3+7x45").scales(48, 1.0).tolist()
    assert scales == [3.0] * 3 + [7.0] * 45
    with pytest.raises(StorylabError, match=r"^schedule 'piecewise:3x3\+7x45' covers 48 steps but sampling has 50 steps$"):
        parse_schedule("piecewise:3x3+7x45").scales(50, 1.0)


def test_piecewise_in_fractions_assigns_step_i_by_i_over_n():
    scales = parse_schedule("piecewise:2x0.25+4x0.75").scales(8, 1.0).tolist()
    assert scales == [2.0 if i / 8 < 0.25 else 4.0 for i in range(8)]
    for spec, message in [("piecewise:2x0.5+4x3", "not both"), ("piecewise:2x0.5+4x0.4", "add up to 1"),
                          ("piecewise:2x1.5e0", "add up to 1"), ("piecewise:-1x3", "scales must be >= 0"),
                          ("piecewise:3", "<scale>x<steps>"), ("piecewise:3x0", "must be > 0")]:
        with pytest.raises(StorylabError, match=message):
            parse_schedule(spec)


def test_list_gives_every_steps_scale_inline_or_from_a_file(tmp_path):
    assert parse_schedule("list:1,2.5,4").scales(3, 9.0).tolist() == [1.0, 2.5, 4.0]
    path = tmp_path / "scales.txt"
    path.write_text("1.5\n2 3, 4\n")
    assert parse_schedule(f"list:{path}").scales(4, 9.0).tolist() == [1.5, 2.0, 3.0, 4.0]
    with pytest.raises(StorylabError, match=r"has 3 values but sampling has 4 steps$"):
        parse_schedule("list:1,2,3").scales(4, 1.0)
    with pytest.raises(StorylabError, match="no file 'nope.txt' exists"):
        parse_schedule("list:nope.txt")
    with pytest.raises(StorylabError, match="takes a shape"):
        parse_schedule("clamp:list:1,2:c=1")


def toy(x, t, cond):
    return 0.5 * x + cond.reshape(-1, 1)


def test_a_list_schedule_sets_each_steps_cfg_scale_and_scale_one_costs_one_evaluation():
    cond, uncond = torch.tensor([1.0, 2.0]), torch.zeros(2)
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    g = Guided(toy, cond, rule=make_rule("cfg"), scale=7.0, schedule="list:1,4", uncond=uncond)
    first = g(StepContext(x=x, t=torch.zeros(2), step=0, num_steps=2, a=0.6, s=0.8)).eps
    assert torch.allclose(first, toy(x, None, cond)) and g.nfe == 1
    second = g(StepContext(x=x, t=torch.zeros(2), step=1, num_steps=2, a=0.6, s=0.8)).eps
    eu, ec = toy(x, None, uncond), toy(x, None, cond)
    assert torch.allclose(second, eu + 4.0 * (ec - eu), atol=1e-6)


def test_pcs_dec_at_start_is_cogvideox_dynamic_cfg_after_diffusers_pr_13172():
    n, guidance_scale = 50, 4.0  # CogVideoX's guidance_scale is our w: scale = 1 + 4
    ours = parse_schedule("pcs-dec:s=5@start").scales(n, 1.0 + guidance_scale)
    formula = [1 + guidance_scale * (1 - math.cos(math.pi * ((n - i) / n) ** 5.0)) / 2 for i in range(n)]
    assert ours.tolist() == pytest.approx(formula, abs=1e-12)
    published = [5.00, 4.91, 4.67, 4.34, 3.96, 3.56, 3.17, 2.81, 2.49, 2.21]  # the PR's sanity check
    assert np.round(ours[:10].numpy(), 2).tolist() == published
    assert all(a >= b for a, b in zip(ours.tolist(), ours.tolist()[1:]))  # decreasing


@pytest.mark.parametrize("start,stop", [(0.0, 0.3), (0.4, 0.6), (0.7, 1.0)])
def test_remove_is_the_complement_of_interval_and_its_steps_are_conditional(start, stop):
    n, w = 11, 3.0
    removed = parse_schedule(f"remove:start={start},stop={stop}").strengths(n, w)
    kept = parse_schedule(f"interval:start={start},stop={stop}").strengths(n, w)
    assert torch.allclose(removed + kept, torch.full((n,), w, dtype=torch.float64))
    p = np.linspace(0, 1, n)
    assert removed.tolist() == [0.0 if start - 1e-12 <= q <= stop + 1e-12 else w for q in p]
    g = Guided(toy, torch.ones(2), rule=make_rule("cfg"), scale=w + 1, schedule=f"remove:start={start},stop={stop}",
               uncond=torch.zeros(2))
    x = torch.zeros(2, 3)
    for i in range(n):
        g(StepContext(x=x, t=torch.zeros(2), step=i, num_steps=n, a=0.6, s=0.8))
    assert g.nfe == int((removed == 0).sum()) + 2 * int((removed != 0).sum())


def slide_shape(name: str, n: int) -> np.ndarray:
    """The slide's definitions in diffusion time t (t = T the noisiest step): linear = 1 - t/T, invlinear = t/T."""
    big_t = n - 1
    t = big_t - np.arange(n)  # step i of sampling is at diffusion time T - i
    linear, invlinear = 1 - t / big_t, t / big_t
    first_half = t < big_t / 2  # "if t < T/2"
    shape = np.where(first_half, invlinear, linear) if name == "v-shape" else np.where(first_half, linear, invlinear)
    return shape / shape.mean()  # mean-normalised like every heuristic shape


@pytest.mark.parametrize("n", [10, 11, 50])
def test_slide_reading_of_v_and_lambda_shapes_derives_from_its_linear_and_invlinear(n):
    p = np.linspace(0, 1, n)
    v_literal = slide_shape("v-shape", n)
    assert np.allclose(parse_schedule("v-shape@slide").shape_array(n), v_literal)
    assert np.allclose(v_literal * np.mean(np.minimum(p, 1 - p)), np.minimum(p, 1 - p))  # a peak mid-sampling
    assert np.allclose(parse_schedule("lambda-shape@slide").shape_array(n), slide_shape("lambda-shape", n))
    named = parse_schedule("v-shape").shape_array(n)  # the name's shape stays the default: high at both ends
    assert named[0] > named[n // 2] < named[-1]
    with pytest.raises(StorylabError, match="@slide applies to v-shape and lambda-shape only"):
        parse_schedule("linear@slide")
