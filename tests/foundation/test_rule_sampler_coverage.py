"""Every guidance rule named in RULES through every sampler named in SAMPLERS, on one tiny denoiser.

The rule list and the sampler list are read from the library, so a rule or sampler added without
working through the guided model fails here. Two properties per (rule, sampler):

* guided sampling runs, stays finite and differs from conditional sampling (the rule acts; ``none``
  equals it);
* under a schedule whose shape is 0 on every step, the rule takes plain conditional steps with one
  network evaluation each, and the result equals the rule ``none`` (README, guidance conventions).
"""

import pytest
import torch

from storylab.diffusion import alphas_cumprod, beta_schedule
from storylab.diffusion.samplers import SAMPLERS, ddim_sample, ddpm_sample, edm_heun_sample
from storylab.guidance import RULES, Guided, make_rule
from storylab.guidance.names import RULE_NETWORKS

ALPHA_BAR = alphas_cumprod(beta_schedule("linear", 100))
STEPS = 4
NO_STEP = "diffusers-interval:start=0,stop=0"  # shape 0 on every step


def run_sampler(name, model, x):
    """Each sampler of SAMPLERS on ``model``; EDM reads sigma as its time input."""
    if name == "ddpm":
        return ddpm_sample(model, x, ALPHA_BAR, STEPS, clip_x0=1.0, generator=torch.Generator().manual_seed(1))
    if name == "ddim":
        return ddim_sample(model, x, ALPHA_BAR, STEPS, eta=0.5, clip_x0=1.0, generator=torch.Generator().manual_seed(1))
    if name == "edm-heun":
        return edm_heun_sample(model, x, STEPS, sigma_max=5.0)
    raise AssertionError(f"sampler '{name}' of SAMPLERS has no row in this test: add one")


def denoiser(x, t, cond):
    """eps depends on x, t and the class so that the cond, uncond and negative branches differ."""
    c = cond.to(x.dtype).reshape(-1, 1, 1, 1)
    return torch.tanh(0.3 * x + 0.2 * c - 0.001 * t.to(x.dtype).reshape(-1, 1, 1, 1))


class LinearClassifier(torch.nn.Module):
    """A noise-aware stand-in classifier, logits linear in x, so that grad log p(y | x_t) is non-zero."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(3, 2 * 4 * 4, generator=torch.Generator().manual_seed(2)))

    def forward(self, x, t):
        return x.flatten(1) @ self.w.T


LABELS = torch.tensor([0, 1, 2])
CONDS = {"cond": LABELS.float() + 1, "uncond": torch.zeros(3), "negative": torch.full((3,), -2.0)}


def other_network(x, t, cond):
    """A second network for the rules that guide with one (AutoGuidance's weak model, PAG/SEG/SLG's perturbed one)."""
    return 0.5 * denoiser(x, t, cond) + 0.1


def rule_named(name, **options):
    """The rule a command builds for ``name``: classifier guidance carries its classifier and labels."""
    if name == "classifier":
        return make_rule(name, classifier=LinearClassifier(), labels=LABELS)
    return make_rule(name, **options)


def guided(name, scale, schedule, **options):
    networks = {RULE_NETWORKS[name]: other_network} if name in RULE_NETWORKS else None
    return Guided(denoiser, CONDS["cond"], rule=rule_named(name, **options), scale=scale, schedule=schedule,
                  uncond=CONDS["uncond"], negative=CONDS["negative"], networks=networks)


class Counting:
    """Counts the sampler's calls of the guided model."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, ctx):
        self.calls += 1
        return self.model(ctx)


def noise():
    return torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("rule", RULES)
def test_every_rule_samples_through_every_sampler(rule, sampler):
    conditional = run_sampler(sampler, Guided(denoiser, CONDS["cond"]), noise())
    # scale 0.7 is a guiding strength for every rule (w = -0.3 for CFG-like rules, gamma/lambda 0.7 otherwise)
    model = Counting(guided(rule, 0.7, "constant"))
    out = run_sampler(sampler, model, noise())
    assert out.shape == (3, 2, 4, 4) and torch.isfinite(out).all()
    if rule == "none":  # the one rule that is conditional sampling by definition
        assert torch.allclose(out, conditional, atol=1e-6)
    else:
        assert not torch.allclose(out, conditional, atol=1e-5), f"{rule} did not change {sampler} sampling"
    assert model.model.nfe >= model.calls


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("rule", RULES)
def test_where_the_shape_is_zero_every_rule_takes_a_conditional_step_with_one_evaluation(rule, sampler):
    conditional = run_sampler(sampler, Guided(denoiser, CONDS["cond"]), noise())
    # CFG-Zero*'s zero-init (the first steps' prediction set to 0) is a part of the rule apart from its
    # guidance, which it applies whatever the scale (as diffusers' CFGZeroStarGuider does): left out here
    options = {"zero_init_steps": 0} if rule == "cfg-zero*" else {}
    model = Counting(guided(rule, 3.0, NO_STEP, **options))
    out = run_sampler(sampler, model, noise())
    assert model.model.nfe == model.calls  # one network evaluation per call, never two or three
    assert torch.allclose(out, conditional, atol=1e-6)
