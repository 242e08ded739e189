"""AutoGuidance, CFG-Zero*, TCFG, FDG, APG-Mix and PAG/SEG/SLG: each against its formula and diffusers' guider."""

import math

import pytest
import torch

from storylab.diffusion import StepContext
from storylab.errors import StorylabError
from storylab.guidance import Guided, make_rule, parse_rule_options
from storylab.guidance.guiders import laplacian_pyramid, pyramid_up, reconstruct_pyramid
from storylab.guidance.registry import rule_options

diffusers_guiders = pytest.importorskip("diffusers.guiders")

G = torch.Generator().manual_seed(0)
C = torch.randn(2, 4, 8, 8, generator=G)
U = torch.randn(2, 4, 8, 8, generator=G)
P = torch.randn(2, 4, 8, 8, generator=G)  # a weak or perturbed prediction


def ctx_at(step=3, num_steps=10, x=None):
    x = torch.zeros_like(C) if x is None else x
    return StepContext(x=x, t=torch.full((2,), 500), step=step, num_steps=num_steps, a=0.6, s=0.8)


def combine(name, w, eps, step=3, **options):
    return make_rule(name, **options).combine(eps, ctx_at(step), w).eps


def diffusers_pred(guider, step=3, num_steps=10, **preds):
    guider.set_state(step, num_steps, torch.tensor(500))
    return guider.forward(**preds).pred


# ---- formulas written out ---------------------------------------------------------------------------------

def test_autoguidance_extrapolates_from_the_weak_model():
    w = 1.5
    expected = P + (w + 1) * (C - P)
    assert torch.allclose(combine("autoguidance", w, {"cond": C, "weak": P}), expected, atol=1e-6)


def test_cfg_zero_star_scales_the_unconditional_branch_by_the_projection_coefficient():
    w = 2.0
    s_star = (C * U).flatten(1).sum(1) / (U * U).flatten(1).sum(1)
    u = U * s_star.reshape(-1, 1, 1, 1)
    expected = u + (w + 1) * (C - u)
    assert torch.allclose(combine("cfg-zero*", w, {"cond": C, "uncond": U}), expected, atol=1e-5)


def test_tcfg_removes_the_unconditional_component_along_the_second_singular_vector():
    w = 2.0
    out = combine("tcfg", w, {"cond": C, "uncond": U})
    for b in range(2):
        m = torch.stack([C[b].flatten(), U[b].flatten()]).double()
        _, _, vh = torch.linalg.svd(m, full_matrices=False)
        u = U[b].flatten().double()
        projected = (u - (u @ vh[1]) * vh[1]).reshape(U[b].shape)  # drop the tangential part
        expected = projected + (w + 1) * (C[b].double() - projected)
        assert torch.allclose(out[b].double(), expected, atol=1e-4)


def test_laplacian_pyramid_reconstructs_exactly_and_its_bands_sum_to_the_image():
    x = torch.randn(2, 3, 16, 12, generator=G)
    bands = laplacian_pyramid(x, 3)
    assert [tuple(b.shape[-2:]) for b in bands] == [(16, 12), (8, 6), (4, 3)]
    assert torch.allclose(reconstruct_pyramid(bands), x, atol=1e-5)
    # a constant image has no detail: every finer band is 0 and the residual is the constant
    const = torch.full((1, 1, 16, 16), 0.7)
    bands = laplacian_pyramid(const, 3)
    assert all(b.abs().max() < 1e-6 for b in bands[:-1]) and torch.allclose(bands[-1], torch.full_like(bands[-1], 0.7))


def test_fdg_with_equal_band_scales_is_cfg_and_otherwise_guides_each_band_at_its_scale():
    w = 3.0
    eps = {"cond": C, "uncond": U}
    assert torch.allclose(combine("fdg", (w, w), eps, low_scale=w + 1), U + (w + 1) * (C - U), atol=1e-5)
    w_low = 0.5
    cb, ub = laplacian_pyramid(C, 2), laplacian_pyramid(U, 2)
    expected = reconstruct_pyramid([ub[0] + (w + 1) * (cb[0] - ub[0]), ub[1] + (w_low + 1) * (cb[1] - ub[1])])
    assert torch.allclose(combine("fdg", (w, w_low), eps, low_scale=w_low + 1), expected, atol=1e-5)


def test_fdg_too_many_levels_for_the_image_is_one_clear_line():
    with pytest.raises(StorylabError, match="4 pyramid levels need images of at least 12 px, got 8 x 8"):
        combine("fdg", (1.0, 1.0), {"cond": C, "uncond": U}, levels=4)


def test_perturbed_guidance_adds_the_perturbation_term_to_cfg():
    s, w_cfg = 2.0, 1.5
    eps = {"cond": C, "uncond": U, "perturbed": P}
    expected = U + (w_cfg + 1) * (C - U) + s * (C - P)
    for name in ("pag", "seg", "slg"):
        assert torch.allclose(combine(name, (s, w_cfg), eps), expected, atol=1e-6)
    assert torch.allclose(combine("pag", (s, 0.0), eps), C + s * (C - P), atol=1e-6)  # Ahn et al. eq. 10
    assert make_rule("pag").branches((s, 0.0)) == ("cond", "perturbed")


def test_apg_mix_is_cfg_before_its_start_step_and_projected_guidance_after():
    rule = make_rule("apg-mix", apg_scale=4.0, eta=0.0, momentum=-0.5, norm_threshold=0.0, start_step=1)
    eps = {"cond": C, "uncond": U}
    w = (2.0, 3.0)
    out0 = rule.combine(eps, ctx_at(0), w).eps
    assert torch.allclose(out0, U + 3.0 * (C - U), atol=1e-6)
    out1 = rule.combine(eps, ctx_at(1), w).eps  # still CFG, momentum updated
    assert torch.allclose(out1, U + 3.0 * (C - U), atol=1e-6)
    out2 = rule.combine(eps, ctx_at(2), w).eps
    d = C - U
    running = d + -0.5 * (d + -0.5 * d)  # three updates of running = diff + m running
    unit = C / C.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
    parallel = (running * unit).flatten(1).sum(1).reshape(-1, 1, 1, 1) * unit
    assert torch.allclose(out2, U + 4.0 * (running - parallel), atol=1e-5)


# ---- against diffusers' guiders on the same tensors ---------------------------------------------------------

def test_autoguidance_equals_diffusers_auto_guidance():
    ref = diffusers_guiders.AutoGuidance(guidance_scale=3.0, auto_guidance_layers=[0], dropout=1.0)
    ours = combine("autoguidance", 2.0, {"cond": C, "weak": P})
    assert torch.allclose(ours, diffusers_pred(ref, pred_cond=C, pred_uncond=P), atol=1e-6)


@pytest.mark.parametrize("step", [0, 1, 4])
def test_cfg_zero_star_equals_diffusers_including_the_zero_init_steps(step):
    ref = diffusers_guiders.ClassifierFreeZeroStarGuidance(guidance_scale=4.0, zero_init_steps=2)
    rule = make_rule("cfg-zero*", zero_init_steps=2)
    expected = diffusers_pred(ref, step=step, pred_cond=C, pred_uncond=U)
    if step < 2:
        assert rule.zero_step(ctx_at(step)) and expected.abs().max() == 0
    else:
        assert not rule.zero_step(ctx_at(step))
        assert torch.allclose(rule.combine({"cond": C, "uncond": U}, ctx_at(step), 3.0).eps, expected, atol=1e-6)


def test_tcfg_equals_diffusers_tangential_cfg():
    ref = diffusers_guiders.TangentialClassifierFreeGuidance(guidance_scale=5.0)
    ours = combine("tcfg", 4.0, {"cond": C, "uncond": U})
    assert torch.allclose(ours, diffusers_pred(ref, pred_cond=C, pred_uncond=U), atol=1e-5)


@pytest.mark.parametrize("parallel_weight", [1.0, 0.3])
def test_fdg_equals_diffusers_frequency_decoupled_guidance_on_the_same_pyramid(monkeypatch, parallel_weight):
    # kornia (diffusers' pyramid) is not installed: hand diffusers the same Burt-Adelson pyramid, so the
    # per-band arithmetic (scales, parallel weights, levels at scale 1) is what is compared.
    import diffusers.guiders.frequency_decoupled_guidance as fdg

    monkeypatch.setattr(fdg, "_CAN_USE_KORNIA", True)
    monkeypatch.setattr(fdg, "build_laplacian_pyramid_func", lambda x, n: laplacian_pyramid(x, n))
    monkeypatch.setattr(fdg, "upsample_and_blur_func", lambda x: pyramid_up(x, (2 * x.shape[-2], 2 * x.shape[-1])))
    ref = fdg.FrequencyDecoupledGuidance(guidance_scales=[6.0, 2.0], parallel_weights=parallel_weight)
    ours = combine("fdg", (5.0, 1.0), {"cond": C, "uncond": U}, low_scale=2.0, parallel_weight=parallel_weight)
    assert torch.allclose(ours, diffusers_pred(ref, pred_cond=C, pred_uncond=U), atol=1e-5)


def test_apg_mix_equals_diffusers_over_a_sampling_run():
    from diffusers.guiders.adaptive_projected_guidance_mix import MomentumBuffer

    ref = diffusers_guiders.AdaptiveProjectedMixGuidance(guidance_scale=3.0, adaptive_projected_guidance_scale=5.0,
                                                         adaptive_projected_guidance_momentum=-0.5,
                                                         adaptive_projected_guidance_rescale=4.0, eta=0.2,
                                                         adaptive_projected_guidance_start_step=1)
    rule = make_rule("apg-mix", apg_scale=5.0, momentum=-0.5, norm_threshold=4.0, eta=0.2, start_step=1)
    ref.set_state(0, 5, torch.tensor(500))
    ref.momentum_buffer = MomentumBuffer(-0.5)  # what diffusers' prepare_inputs does at step 0
    gen = torch.Generator().manual_seed(1)
    for step in range(5):
        c, u = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
        ours = rule.combine({"cond": c, "uncond": u}, ctx_at(step, 5), (2.0, 4.0)).eps
        assert torch.allclose(ours, diffusers_pred(ref, step=step, num_steps=5, pred_cond=c, pred_uncond=u), atol=1e-5)


@pytest.mark.parametrize("name,cls,kwargs", [
    ("pag", "PerturbedAttentionGuidance", {"perturbed_guidance_scale": 2.5, "perturbed_guidance_layers": [0],
                                           "perturbed_guidance_start": 0.0, "perturbed_guidance_stop": 1.0}),
    ("slg", "SkipLayerGuidance", {"skip_layer_guidance_scale": 2.5, "skip_layer_guidance_layers": [0],
                                  "skip_layer_guidance_start": 0.0, "skip_layer_guidance_stop": 1.0}),
    ("seg", "SmoothedEnergyGuidance", {"seg_guidance_scale": 2.5, "seg_guidance_layers": [0]}),
])
def test_perturbed_guidance_with_cfg_equals_diffusers(name, cls, kwargs):
    ref = getattr(diffusers_guiders, cls)(guidance_scale=4.0, **kwargs)
    key = "pred_cond_seg" if name == "seg" else "pred_cond_skip"
    expected = diffusers_pred(ref, pred_cond=C, pred_uncond=U, **{key: P})
    ours = combine(name, (2.5, 3.0), {"cond": C, "uncond": U, "perturbed": P}, cfg_scale=4.0)
    assert torch.allclose(ours, expected, atol=1e-6)


def test_diffusers_pag_without_cfg_is_ours_at_one_less():
    ref = diffusers_guiders.PerturbedAttentionGuidance(guidance_scale=1.0, perturbed_guidance_scale=3.0,
                                                       perturbed_guidance_layers=[0], perturbed_guidance_start=0.0,
                                                       perturbed_guidance_stop=1.0)
    expected = diffusers_pred(ref, pred_cond=C, pred_cond_skip=P)
    assert torch.allclose(combine("pag", (2.0, 0.0), {"cond": C, "perturbed": P}), expected, atol=1e-6)


# ---- in Guided: separate networks, schedules, strict options -------------------------------------------------

def net(offset):
    calls = []

    def denoiser(x, t, cond):
        calls.append(x.shape[0])
        return 0.5 * x + cond.reshape(-1, 1, 1, 1) + offset

    denoiser.calls = calls
    return denoiser


COND, UNCOND = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0])


def test_weak_network_gets_the_conditional_condition_in_its_own_call():
    main, weak = net(0.0), net(0.25)
    g = Guided(main, COND, rule=make_rule("autoguidance"), scale=3.0, networks={"weak": weak})
    x = torch.randn(2, 1, 4, 4, generator=G)
    out = g(ctx_at(2, 10, x)).eps
    ec, ew = main(x, None, COND), weak(x, None, COND)
    assert torch.allclose(out, ew + 3.0 * (ec - ew), atol=1e-6)
    assert g.nfe == 2 and main.calls[0] == 2 and weak.calls[0] == 2


def test_separate_unconditional_network_for_cfg():
    big, small = net(0.0), net(-0.5)
    g = Guided(big, COND, rule=make_rule("cfg"), scale=2.0, uncond=UNCOND, networks={"uncond": small})
    x = torch.randn(2, 1, 4, 4, generator=G)
    out = g(ctx_at(2, 10, x)).eps
    eu = small(x, None, UNCOND)
    assert torch.allclose(out, eu + 2.0 * (big(x, None, COND) - eu), atol=1e-6)


def test_rule_without_its_network_is_one_clear_line():
    with pytest.raises(StorylabError, match="guidance 'autoguidance' needs a separate network for the 'weak' branch"):
        Guided(net(0.0), COND, rule=make_rule("autoguidance"), scale=2.0)


def test_cfg_zero_star_skips_the_network_on_zero_init_steps():
    main = net(0.0)
    g = Guided(main, COND, rule=make_rule("cfg-zero*", zero_init_steps=1), scale=2.0, uncond=UNCOND)
    x = torch.randn(2, 1, 4, 4, generator=G)
    assert g(ctx_at(0, 10, x)).eps.abs().max() == 0 and g.nfe == 0
    g(ctx_at(1, 10, x))
    assert g.nfe == 2


def test_schedule_modulates_both_strengths_of_two_strength_rules():
    g = Guided(net(0.0), COND, rule=make_rule("fdg", low_scale=2.0), scale=5.0, schedule="linear", uncond=UNCOND)
    values = g.strengths(5)
    shape = [p / 0.5 for p in (0.0, 0.25, 0.5, 0.75, 1.0)]  # linear, mean-normalised over the 5 steps
    assert [v[0] for v in values] == pytest.approx([4.0 * s for s in shape])
    assert [v[1] for v in values] == pytest.approx([1.0 * s for s in shape])
    pag = Guided(net(0.0), COND, rule=make_rule("pag", cfg_scale=3.0), scale=1.5, schedule="linear",
                 uncond=UNCOND, networks={"perturbed": net(1.0)})
    assert [v[0] for v in pag.strengths(5)] == pytest.approx([1.5 * s for s in shape])
    assert [v[1] for v in pag.strengths(5)] == pytest.approx([2.0 * s for s in shape])


def test_rules_refuse_options_they_do_not_take():
    with pytest.raises(StorylabError, match=r"^guidance 'cfg' does not take option 'eta' \(it takes: rescale\)$"):
        make_rule("cfg", eta=0.5)
    with pytest.raises(StorylabError, match=r"^guidance 'cfg\+\+' does not take option 'rescale' \(it takes: no options\)$"):
        make_rule("cfg++", rescale=0.5)
    with pytest.raises(StorylabError, match="unknown guidance 'cgf'"):
        make_rule("cgf")
    assert parse_rule_options("seg", ["blur_sigma=inf", "cfg_scale=2"]) == {"blur_sigma": math.inf, "cfg_scale": 2.0}
    assert parse_rule_options("cfg-zero-star", ["zero_init_steps=2"]) == {"zero_init_steps": 2}
    for pairs, message in ([["zero_init_steps=1.5"], "must be an integer"], [["eta"], "KEY=VALUE"],
                           [["rescale=0.1", "rescale=0.2"], "given twice"], [["eta=1"], "does not take option 'eta'"]):
        with pytest.raises(StorylabError, match=message):
            parse_rule_options("cfg-zero*", pairs)
    assert set(rule_options("apg-mix")) == {"apg_scale", "eta", "momentum", "norm_threshold", "start_step"}
