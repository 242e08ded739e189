"""Perturbed self-attention (PAG / SEG / skip-layer) in our UNet, AutoGuidance's weak model, a separate uncond network."""

import math

import pytest
import torch
import torch.nn.functional as F

from storylab.errors import StorylabError
from storylab.guidance import make_rule
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, sample_digits
from storylab.images.networks.unet import SelfAttention, UNetConfig, gaussian_blur_queries, perturbed_attention

TINY = UNetConfig(channels=8, emb_dim=16, groups=4)


def attention_parts(layer, x):
    b, c, h, w = x.shape
    return layer.qkv(layer.norm(x)).reshape(b, 3, c, h * w).unbind(1)


@pytest.fixture(scope="module")
def layer():
    torch.manual_seed(0)
    return SelfAttention(8, 4).eval()


X = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(1))


def test_identity_attention_returns_the_values_and_skip_returns_the_residual(layer):
    _, _, v = attention_parts(layer, X)
    with perturbed_attention(layer, "identity"):
        identity = layer(X)
    assert torch.allclose(identity, X + layer.proj(v.reshape(X.shape)), atol=1e-6)
    with perturbed_attention(layer, "skip"):
        assert torch.equal(layer(X), X)
    assert layer.perturbation is None  # restored on leaving
    q, k, v = attention_parts(layer, X)
    weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(8), dim=-1)  # (B, HW, HW)
    assert torch.allclose(layer(X), X + layer.proj((weights @ v.transpose(1, 2)).transpose(1, 2).reshape(X.shape)),
                          atol=1e-5)


def test_seg_query_blur_equals_diffusers_gaussian_blur_on_the_same_queries():
    from diffusers.hooks.smoothed_energy_guidance_utils import _gaussian_blur_2d

    q = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(2))
    tokens = q.flatten(2).transpose(1, 2).contiguous()  # (B, HW, C), diffusers' layout
    sigma = 0.8
    size = math.ceil(6 * sigma) + 1 - math.ceil(6 * sigma) % 2
    # diffusers blurs with the kernel when sigma exceeds its threshold and takes the mean otherwise
    theirs = _gaussian_blur_2d(tokens.clone(), size, sigma, sigma_threshold_inf=0.1)
    ours = gaussian_blur_queries(q, sigma).flatten(2).transpose(1, 2)
    assert torch.allclose(ours, theirs, atol=1e-6)
    theirs_mean = _gaussian_blur_2d(tokens.clone(), size, sigma, sigma_threshold_inf=1e9)
    assert torch.allclose(gaussian_blur_queries(q, math.inf).flatten(2).transpose(1, 2), theirs_mean, atol=1e-6)


def test_infinite_blur_gives_every_position_the_mean_query(layer):
    q, k, v = attention_parts(layer, X)
    mean_q = q.mean(dim=2, keepdim=True).expand_as(q)
    out = F.scaled_dot_product_attention(mean_q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    with perturbed_attention(layer, "blur", math.inf):
        assert torch.allclose(layer(X), X + layer.proj(out.transpose(1, 2).reshape(X.shape)), atol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return DigitDiffusion(DigitDiffusionConfig(unet=TINY, num_timesteps=100)).eval()


@pytest.fixture(scope="module")
def weaker():
    torch.manual_seed(5)
    return DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=4, emb_dim=8, groups=2), num_timesteps=100)).eval()


LABELS = torch.tensor([0, 1, 2])


def test_autoguidance_with_the_model_as_its_own_guide_is_conditional_sampling(tiny, weaker):
    conditional = sample_digits(tiny, LABELS, "none", 1.0, "constant", "ddim", 4, seed=1)
    same = sample_digits(tiny, LABELS, "autoguidance", 3.0, "constant", "ddim", 4, seed=1, guide=tiny)
    assert torch.allclose(same, conditional, atol=1e-5)
    guided, g = sample_digits(tiny, LABELS, "autoguidance", 3.0, "constant", "ddim", 4, seed=1, guide=weaker,
                              return_model=True)
    assert not torch.allclose(guided, conditional, atol=1e-3) and g.nfe == 4 * 2


@pytest.mark.parametrize("rule", ["pag", "seg", "slg"])
def test_perturbed_attention_guidance_runs_on_the_unet_and_scale_zero_is_conditional(tiny, rule):
    conditional = sample_digits(tiny, LABELS, "none", 1.0, "constant", "ddim", 4, seed=1)
    assert torch.allclose(sample_digits(tiny, LABELS, rule, 0.0, "constant", "ddim", 4, seed=1), conditional, atol=1e-6)
    guided, g = sample_digits(tiny, LABELS, rule, 2.0, "linear", "ddim", 4, seed=1, return_model=True)
    assert not torch.allclose(guided, conditional, atol=1e-4)
    assert g.nfe == 1 + 2 * 3  # linear: the first step is conditional, then cond + perturbed


def test_separate_unconditional_network_same_as_main_is_plain_cfg(tiny, weaker):
    plain = sample_digits(tiny, LABELS, "cfg", 2.5, "constant", "ddim", 4, seed=1)
    same = sample_digits(tiny, LABELS, "cfg", 2.5, "constant", "ddim", 4, seed=1, uncond_model=tiny)
    assert torch.allclose(plain, same, atol=1e-5)
    small = sample_digits(tiny, LABELS, "cfg", 2.5, "constant", "ddim", 4, seed=1, uncond_model=weaker)
    assert not torch.allclose(plain, small, atol=1e-3)


def test_networks_a_rule_does_not_use_or_lacks_are_one_clear_line(tiny, weaker):
    with pytest.raises(StorylabError, match="guidance 'autoguidance' guides with a weaker model: pass --guide-checkpoint"):
        sample_digits(tiny, LABELS, "autoguidance", 2.0, "constant", "ddim", 2)
    with pytest.raises(StorylabError, match="--guide-checkpoint is used by autoguidance only, not by guidance 'cfg'"):
        sample_digits(tiny, LABELS, "cfg", 2.0, "constant", "ddim", 2, guide=weaker)
    with pytest.raises(StorylabError, match="--uncond-checkpoint is not used by guidance 'pag'"):
        sample_digits(tiny, LABELS, make_rule("pag"), 2.0, "constant", "ddim", 2, uncond_model=weaker)
    other = DigitDiffusion(DigitDiffusionConfig(unet=TINY, num_timesteps=50)).eval()
    with pytest.raises(StorylabError, match="uses another noise schedule"):
        sample_digits(tiny, LABELS, "autoguidance", 2.0, "constant", "ddim", 2, guide=other)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, tiny, weaker):
    from storylab.images.networks.denoiser import save_digit_model

    root = tmp_path_factory.mktemp("ck")
    return save_digit_model(root / "tiny.safetensors", tiny), save_digit_model(root / "weak.safetensors", weaker)


@pytest.mark.parametrize("args", [
    ("--guidance", "autoguidance", "--guide-checkpoint", "WEAK"),
    ("--guidance", "cfg", "--uncond-checkpoint", "WEAK"),
    ("--guidance", "seg", "--rule-option", "blur_sigma=1.0", "--rule-option", "cfg_scale=2"),
    ("--guidance", "cfg-zero*", "--rule-option", "zero_init_steps=1"),
    ("--guidance", "fdg", "--rule-option", "low_scale=1.5"),
    ("--guidance", "tcfg",), ("--guidance", "apg-mix",), ("--guidance", "pag",), ("--guidance", "slg",),
])
def test_sample_digits_cli_draws_with_every_new_rule(tmp_path, checkpoints, args):
    from tests.cli_runner import run_cli

    main, weak = checkpoints
    out = tmp_path / "grid.png"
    args = [str(weak) if a == "WEAK" else a for a in args]
    res = run_cli("sample", "digits", "--checkpoint", str(main), "--steps", "3", "--per-class", "1", "--no-progress",
                  "--out", str(out), *args)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,needle", [
    (("--guidance", "cfg", "--apg-eta", "0.5"), "--apg-eta is not used by guidance 'cfg'"),
    (("--guidance", "cfg", "--rule-option", "eta=0.5"), "guidance 'cfg' does not take option 'eta' (it takes: rescale)"),
    (("--guidance", "autoguidance"), "pass --guide-checkpoint"),
    (("--guidance", "pag", "--guide-checkpoint", "WEAK"), "--guide-checkpoint is used by autoguidance only"),
    (("--guidance", "cfg-zero*", "--rule-option", "zero_init_steps"), "--rule-option must look like KEY=VALUE"),
])
def test_sample_digits_cli_refuses_options_a_rule_does_not_take(tmp_path, checkpoints, args, needle):
    from tests.cli_runner import run_cli

    main, weak = checkpoints
    out = tmp_path / "grid.png"
    args = [str(weak) if a == "WEAK" else a for a in args]
    res = run_cli("sample", "digits", "--checkpoint", str(main), "--steps", "2", "--per-class", "1", "--out", str(out), *args)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert not out.exists()


@pytest.mark.parametrize("rule", ["apg-mix", "autoguidance", "cfg-zero*", "tcfg", "fdg", "pag", "seg", "slg"])
def test_app_guidance_panel_draws_with_the_new_menu_rules(rule):
    from storylab.guidance.names import RULES
    from storylab.images.assets import shipped
    from storylab.images.commands.panel import guidance_grid

    assert rule in RULES  # the app's rule menu lists RULES (less classifier)
    if rule == "autoguidance" and not shipped("digits", "guide").exists():
        with pytest.raises(StorylabError, match="AutoGuidance needs a weak guide model, and none is shipped for 'digits'"):
            guidance_grid("digits", rule, 2.0, "constant", "ddim", 2, 0, 1)
        return
    result = guidance_grid("digits", rule, 2.0, "linear", "ddim", 2, 0, 1)
    assert result.image.ndim == 2 and result.nfe >= 2
