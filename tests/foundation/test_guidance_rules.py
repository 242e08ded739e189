"""Guidance rules: scale conventions, skipped passes, batching, classifier guidance, CFG++, APG, rescale."""

import pytest
import torch

from storylab.diffusion import StepContext, alphas_cumprod, beta_schedule, ddim_sample
from storylab.errors import StorylabError
from storylab.guidance import APG, CFG, CFGPlusPlus, ClassifierGuidance, Guided, NoGuidance, make_rule


def toy_denoiser(x, t, cond):
    """eps depends on x, t and the condition (a (B,) float tensor) so branches differ."""
    c = cond if isinstance(cond, torch.Tensor) else cond["c"]
    return 0.5 * x + 0.01 * t.float().reshape(-1, 1) + c.reshape(-1, 1)


def ctx_for(x, step=0, num_steps=10):
    return StepContext(x=x, t=torch.full((x.shape[0],), 500), step=step, num_steps=num_steps, a=0.6, s=0.8)


COND, UNCOND, NEG = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]), torch.tensor([-1.0, -3.0])
X = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))


def eps_of(cond):
    return toy_denoiser(X, torch.full((2,), 500), cond)


def test_scale_one_equals_the_conditional_prediction_with_one_evaluation():
    g = Guided(toy_denoiser, COND, rule=CFG(), scale=1.0, uncond=UNCOND)
    out = g(ctx_for(X))
    assert torch.allclose(out.eps, eps_of(COND))
    assert g.nfe == 1  # unconditional pass skipped where w = 0


def test_scale_zero_equals_the_unconditional_prediction():
    g = Guided(toy_denoiser, COND, rule=CFG(), scale=0.0, uncond=UNCOND)
    assert torch.allclose(g(ctx_for(X)).eps, eps_of(UNCOND))


def test_cfg_matches_both_conventions():
    s = 3.5
    out = Guided(toy_denoiser, COND, rule=CFG(), scale=s, uncond=UNCOND)(ctx_for(X)).eps
    eu, ec = eps_of(UNCOND), eps_of(COND)
    assert torch.allclose(out, eu + s * (ec - eu), atol=1e-6)  # diffusers
    w = s - 1
    assert torch.allclose(out, (w + 1) * ec - w * eu, atol=1e-6)  # Ho & Salimans


def test_negative_condition_replaces_the_unconditional_branch():
    out = Guided(toy_denoiser, COND, rule=make_rule("negative"), scale=2.0, negative=NEG)(ctx_for(X)).eps
    en, ec = eps_of(NEG), eps_of(COND)
    assert torch.allclose(out, en + 2.0 * (ec - en), atol=1e-6)


def test_missing_branch_condition_is_a_clear_error():
    with pytest.raises(StorylabError, match="needs a 'negative' condition"):
        Guided(toy_denoiser, COND, rule=make_rule("negative"), scale=2.0)(ctx_for(X))


def test_branches_are_batched_into_one_call_and_match_separate_calls():
    calls = []

    def counting(x, t, cond):
        calls.append(x.shape[0])
        return toy_denoiser(x, t, cond)

    g = Guided(counting, {"c": COND}, rule=CFG(), scale=4.0, uncond={"c": UNCOND})
    out = g(ctx_for(X)).eps
    assert calls == [4] and g.nfe == 2
    eu, ec = eps_of(UNCOND), eps_of(COND)
    assert torch.allclose(out, eu + 4.0 * (ec - eu), atol=1e-6)


def test_interval_schedule_skips_unconditional_passes_outside_the_interval():
    ab = alphas_cumprod(beta_schedule("linear", 1000)).float()
    g = Guided(toy_denoiser, COND, rule=CFG(), scale=3.0, uncond=UNCOND, schedule="interval:start=0.3,stop=0.6")
    ddim_sample(g, torch.randn(2, 3), ab, num_steps=21)
    guided_steps = sum(1 for i in range(21) if 0.3 <= i / 20 <= 0.6)
    assert g.nfe == 21 + guided_steps


def test_x0_prediction_networks_are_guided_in_the_same_linear_way():
    g = Guided(toy_denoiser, COND, rule=CFG(), scale=2.5, uncond=UNCOND, prediction="x0")
    ctx = ctx_for(X)
    out = g(ctx)
    x0_guided = eps_of(UNCOND) + 2.5 * (eps_of(COND) - eps_of(UNCOND))  # raw outputs are x0 here
    assert torch.allclose(ctx.eps_to_x0(out.eps), x0_guided, atol=1e-5)


def test_rescale_zero_is_cfg_and_rescale_one_matches_the_conditional_std():
    ec, eu = torch.randn(2, 16), torch.randn(2, 16)
    eps = {"cond": ec, "uncond": eu}
    plain = CFG().combine(eps, ctx_for(X), 4.0).eps
    assert torch.allclose(CFG(rescale=0.0).combine(eps, ctx_for(X), 4.0).eps, plain)
    full = CFG(rescale=1.0).combine(eps, ctx_for(X), 4.0).eps
    assert torch.allclose(full.std(dim=1), ec.std(dim=1), atol=1e-5)
    with pytest.raises(StorylabError, match="rescale"):
        CFG(rescale=1.5)


def test_apg_without_projection_tricks_is_cfg():
    ctx = ctx_for(X)
    eps = {"cond": eps_of(COND), "uncond": eps_of(UNCOND)}
    apg = APG(eta=1.0).combine(eps, ctx, 2.0).eps
    cfg = CFG().combine(eps, ctx, 2.0).eps
    assert torch.allclose(apg, cfg, atol=1e-5)


def test_apg_eta_zero_removes_the_parallel_component():
    ctx = ctx_for(X)
    eps = {"cond": eps_of(COND), "uncond": eps_of(UNCOND)}
    x0c = ctx.eps_to_x0(eps["cond"])
    update = ctx.eps_to_x0(APG(eta=0.0).combine(eps, ctx, 1.0).eps) - x0c
    assert torch.allclose((update * x0c).sum(1), torch.zeros(2), atol=1e-4)  # orthogonal to x0_c


def test_cfgpp_renoises_with_the_unconditional_eps():
    eps = {"cond": eps_of(COND), "uncond": eps_of(UNCOND)}
    out = CFGPlusPlus().combine(eps, ctx_for(X), 0.6)
    assert torch.allclose(out.renoise_eps, eps["uncond"])
    assert torch.allclose(out.eps, eps["uncond"] + 0.6 * (eps["cond"] - eps["uncond"]))


def test_classifier_guidance_follows_the_formula_and_shifts_the_score():
    weight = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    classifier = lambda x, t: x @ weight  # linear logits, (B, 4)
    labels = torch.tensor([1, 3])
    rule = ClassifierGuidance(classifier=classifier, labels=labels)
    ctx = ctx_for(X)
    base = {"cond": eps_of(COND)}
    out = rule.combine(base, ctx, 2.0).eps
    x = X.clone().requires_grad_(True)
    grad = torch.autograd.grad(torch.log_softmax(x @ weight, -1)[torch.arange(2), labels].sum(), x)[0]
    assert torch.allclose(out, base["cond"] - ctx.s * 2.0 * grad, atol=1e-6)
    assert torch.allclose(rule.combine(base, ctx, 0.0).eps, base["cond"])  # gamma 0: unguided
    # the score moves by +gamma grad log p: the x0 estimate shifts by s^2 gamma grad / a (Tweedie)
    shift = ctx.eps_to_x0(out) - ctx.eps_to_x0(base["cond"])
    assert torch.allclose(shift, ctx.s ** 2 * 2.0 * grad / ctx.a, atol=1e-5)


def test_classifier_guidance_schedule_modulates_gamma():
    rule = ClassifierGuidance(classifier=lambda x, t: x, labels=torch.tensor([0, 1]))
    g = Guided(toy_denoiser, COND, rule=rule, scale=2.0, schedule="linear")
    w = g.strengths(5)
    assert w[0] == pytest.approx(0.0) and sum(w) / 5 == pytest.approx(2.0)


def test_no_guidance_uses_one_evaluation():
    g = Guided(toy_denoiser, COND, rule=NoGuidance())
    assert torch.allclose(g(ctx_for(X)).eps, eps_of(COND)) and g.nfe == 1


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(StorylabError, match="unknown guidance 'magic'"):
        make_rule("magic")


# --- rules against their official formulas, computed independently -------------------------------------

from storylab.diffusion import ddpm_sample, edm_heun_sample  # noqa: E402
from storylab.diffusion.schedules import sampling_timesteps  # noqa: E402
from storylab.guidance import NegativeCFG  # noqa: E402

AB = alphas_cumprod(beta_schedule("linear", 1000)).to(torch.float64)
W_CLF = torch.randn(3, 4, generator=torch.Generator().manual_seed(5))


def linear_classifier(x, t):
    return x.float() @ W_CLF  # (B, 4) logits


def grad_log_p(x, labels):
    x = x.detach().float().requires_grad_(True)
    return torch.autograd.grad(torch.log_softmax(linear_classifier(x, None), -1)[torch.arange(x.shape[0]), labels].sum(), x)[0]


def test_cfgpp_schedule_modulates_lambda_within_zero_one_and_unguided_steps_are_conditional():
    g = Guided(toy_denoiser, COND, rule=CFGPlusPlus(), scale=0.6, uncond=UNCOND, schedule="linear")
    lam = g.strengths(5)
    assert lam == pytest.approx([0.6 * i / 4 for i in range(5)])  # peak-normalised: never above lambda (<= 1)
    first = g(ctx_for(X, step=0, num_steps=5))  # linear's shape is 0 at the first step
    assert torch.allclose(first.eps, eps_of(COND)) and first.renoise_eps is None and g.nfe == 1
    out = g(ctx_for(X, step=2, num_steps=5))
    eu, ec = eps_of(UNCOND), eps_of(COND)
    assert torch.allclose(out.eps, eu + 0.3 * (ec - eu)) and torch.allclose(out.renoise_eps, eu)


def test_cfgpp_on_ddim_is_the_papers_update():
    """CFG++ (Chung et al. 2024, Alg. 1): x_prev = sqrt(ab_prev) x0(eps_u + lam (eps_c - eps_u)) + sqrt(1 - ab_prev) eps_u."""
    n, lam = 4, 0.7
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = ddim_sample(Guided(toy_denoiser, COND.double(), rule=CFGPlusPlus(), scale=lam, uncond=UNCOND.double()),
                       x, AB, num_steps=n)
    ts = sampling_timesteps(1000, n).tolist()
    ref = x.clone()
    for i, t in enumerate(ts):
        ab, ab_prev = float(AB[t]), (float(AB[ts[i + 1]]) if i + 1 < n else 1.0)
        tt = torch.full((2,), t)
        eu, ec = toy_denoiser(ref, tt, UNCOND.double()), toy_denoiser(ref, tt, COND.double())
        x0 = (ref - (1 - ab) ** 0.5 * (eu + lam * (ec - eu))) / ab ** 0.5
        ref = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eu
    assert torch.allclose(ours, ref, atol=1e-10)


def _ddpm_reference(x, n, gamma, form, seed, clip=None):
    """Ancestral DDPM with guided-diffusion's condition_mean (mean + Sigma gamma grad) or the eps (score) shift."""
    ts = sampling_timesteps(1000, n).tolist()
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([1, 3])
    for i, t in enumerate(ts):
        ab, ab_prev = float(AB[t]), (float(AB[ts[i + 1]]) if i + 1 < n else 1.0)
        alpha, beta = ab / ab_prev, 1 - ab / ab_prev
        var = 0.0 if i + 1 == n else (1 - ab_prev) / (1 - ab) * beta
        eps = toy_denoiser(x, torch.full((2,), t), COND.double())
        g = grad_log_p(x, labels).double()
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
        if clip is not None:  # guided-diffusion's order: clip the unguided x0 ...
            x0 = x0.clamp(-clip, clip)
        if form == "score":  # ... then shift eps (condition_score) without clipping again
            x0 = x0 + (1 - ab) * gamma * g / ab ** 0.5
        mean = ab_prev ** 0.5 * beta / (1 - ab) * x0 + alpha ** 0.5 * (1 - ab_prev) / (1 - ab) * x
        if form == "mean":
            mean = mean + var * gamma * g
        x = mean + (var ** 0.5 * torch.randn(x.shape, generator=gen, dtype=x.dtype) if var > 0 else 0.0)
    return x


@pytest.mark.parametrize("form", ["mean", "score"])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_classifier_guidance_on_ddpm_follows_guided_diffusion(form, clip):
    n, gamma = 6, 3.0
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    rule = ClassifierGuidance(classifier=linear_classifier, labels=torch.tensor([1, 3]),
                              form="auto" if form == "mean" else "score")
    ours = ddpm_sample(Guided(toy_denoiser, COND.double(), rule=rule, scale=gamma), x, AB, num_steps=n, clip_x0=clip,
                       generator=torch.Generator().manual_seed(7), clip_order="guided-diffusion")
    assert torch.allclose(ours, _ddpm_reference(x, n, gamma, form, 7, clip), atol=1e-8)
    if form == "mean":  # the default order keeps guided-diffusion's condition_mean
        default = ddpm_sample(Guided(toy_denoiser, COND.double(), rule=rule, scale=gamma), x, AB, num_steps=n,
                              clip_x0=clip, generator=torch.Generator().manual_seed(7))
        assert torch.equal(default, ours)


def test_classifier_guidance_mean_form_skips_the_last_ddpm_step():
    rule = ClassifierGuidance(classifier=linear_classifier, labels=torch.tensor([1, 3]))
    ctx = StepContext(x=X, t=torch.full((2,), 3), step=9, num_steps=10, a=0.99, s=0.1, variance=0.0)
    out = rule.combine({"cond": eps_of(COND)}, ctx, 5.0)
    assert torch.equal(out.eps, eps_of(COND)) and out.mean_shift is None


@pytest.mark.parametrize("order", ["guided-diffusion", "after", "auto"])
def test_ddim_clip_order_with_classifier_guidance(order):
    """guided-diffusion (condition_score after p_mean_variance): clip the unguided x0, add the shift unclipped."""
    n, gamma, clip = 5, 40.0, 0.5
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 3
    rule = ClassifierGuidance(classifier=linear_classifier, labels=torch.tensor([1, 3]))
    ours = ddim_sample(Guided(toy_denoiser, COND.double(), rule=rule, scale=gamma), x, AB, num_steps=n, clip_x0=clip,
                       clip_order=order)
    ts = sampling_timesteps(1000, n).tolist()
    ref = x.clone()
    for i, t in enumerate(ts):
        ab, ab_prev = float(AB[t]), (float(AB[ts[i + 1]]) if i + 1 < n else 1.0)
        a, s = ab ** 0.5, (1 - ab) ** 0.5
        eps = toy_denoiser(ref, torch.full((2,), t), COND.double())
        shift = -s * gamma * grad_log_p(ref, torch.tensor([1, 3])).double()
        if order == "guided-diffusion":
            x0_u = ((ref - s * eps) / a).clamp(-clip, clip)
            eps = (ref - a * x0_u) / s + shift
            x0 = (ref - s * eps) / a
        else:  # "after" (and "auto" for the score form): clip the guided x0
            x0 = ((ref - s * (eps + shift)) / a).clamp(-clip, clip)
            eps = (ref - a * x0) / s
        ref = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eps
    assert torch.allclose(ours, ref, atol=1e-8)


def test_apg_momentum_is_reset_once_per_sampling_under_edm_heun():
    resets = []
    rule = APG(momentum=-0.5)
    original = rule.reset
    rule.reset = lambda: (resets.append(1), original())[1]
    g = Guided(toy_denoiser, COND, rule=rule, scale=3.0, uncond=UNCOND)
    edm_heun_sample(g, torch.randn(2, 3), num_steps=4)
    edm_heun_sample(g, torch.randn(2, 3), num_steps=4)
    assert len(resets) == 2  # the Heun corrector's step-0 evaluation does not reset again


def test_apg_momentum_matches_diffusers_momentum_buffer():
    from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer

    rule, buffer = APG(momentum=-0.5, eta=1.0), MomentumBuffer(-0.5)
    ctx = ctx_for(X)
    for k in range(3):
        eps = {"cond": eps_of(COND) * (k + 1), "uncond": eps_of(UNCOND) - k}
        ours = ctx.eps_to_x0(rule.combine(eps, ctx, 2.0).eps)
        x0c, x0u = ctx.eps_to_x0(eps["cond"]), ctx.eps_to_x0(eps["uncond"])
        buffer.update(x0c - x0u)
        assert torch.allclose(ours, x0c + 2.0 * buffer.running_average, atol=1e-5)  # eta = 1: no projection


@pytest.mark.parametrize("prediction", ["v", "x0"])
def test_rescale_for_v_and_x0_networks_runs_on_the_raw_output_like_diffusers(prediction):
    from diffusers.guiders.guider_utils import rescale_noise_cfg

    from storylab.diffusion.forward import to_eps

    x = torch.randn(2, 16, generator=torch.Generator().manual_seed(4))

    def net(xs, t, cond):
        return torch.sin(3 * xs) * cond.reshape(-1, 1) + 0.1 * cond.reshape(-1, 1)

    ctx = StepContext(x=x, t=torch.full((2,), 500), step=0, num_steps=10, a=0.6, s=0.8)
    out = Guided(net, COND, rule=CFG(rescale=0.7), scale=5.0, uncond=UNCOND + 0.5, prediction=prediction)(ctx).eps
    rc, ru = net(x, None, COND), net(x, None, UNCOND + 0.5)
    official = rescale_noise_cfg(ru + 5.0 * (rc - ru), rc, guidance_rescale=0.7)  # diffusers: raw model output
    assert torch.allclose(out, to_eps(official, x, prediction, torch.tensor(0.6), torch.tensor(0.8)), atol=1e-5)


def test_negative_scale_zero_is_the_negative_prediction_and_the_three_branch_rule():
    g = Guided(toy_denoiser, COND, rule=make_rule("negative"), scale=0.0, negative=NEG)
    assert torch.allclose(g(ctx_for(X)).eps, eps_of(NEG))  # scale 0 = eps_neg, not unconditional
    eu, ec, en = eps_of(UNCOND), eps_of(COND), eps_of(NEG)
    rule = make_rule("negative3", negative_scale=1.5)
    assert isinstance(rule, NegativeCFG)
    out = Guided(toy_denoiser, COND, rule=rule, scale=4.0, uncond=UNCOND, negative=NEG)(ctx_for(X)).eps
    assert torch.allclose(out, eu + 4.0 * (ec - eu) - 1.5 * (en - eu), atol=1e-6)
    zero = Guided(toy_denoiser, COND, rule=NegativeCFG(negative_scale=0.0), scale=0.0, uncond=UNCOND, negative=NEG)
    assert torch.allclose(zero(ctx_for(X)).eps, eu, atol=1e-6)
