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
