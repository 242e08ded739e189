"""ControlNet properties (issue 3): zero-init identity, gradients at init, scale/window switches, composition."""

import pytest
import torch

from storylab.errors import StorylabError
from storylab.guidance import make_rule
from storylab.images.control.controlnet import (Control, ControlledDenoiser, ControlNet, ControlNetConfig, ControlNetTraining,
                                        active_in_window, guess_mode_scales, load_controlnet, save_controlnet)
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, sample_digits
from storylab.images.networks.unet import UNetConfig

TINY = DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4), num_timesteps=100)
HINT = (4, 8, 8)


def tiny_base(seed: int = 0) -> DigitDiffusion:
    torch.manual_seed(seed)
    return DigitDiffusion(TINY).eval()


def randomise_zero_convs(net: ControlNet, seed: int = 1) -> ControlNet:
    """Give the zero convs random weights so a control has an effect (as diffusers' tests do)."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in net.named_parameters():
        if "zero_conv" in name:
            p.data = torch.randn(p.shape, generator=gen) * 0.3
    return net


def batch(b: int = 4, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(b, 1, 8, 8, generator=gen), torch.randint(0, 100, (b,), generator=gen),
            torch.randint(0, 11, (b,), generator=gen), torch.rand(b, 1, 32, 32, generator=gen))


@pytest.mark.parametrize("options", [{}, {"mid_only": True}, {"unlock_decoder": True}])
def test_zero_initialised_controlnet_equals_the_base_for_any_condition(options):
    base = tiny_base()
    net = ControlNet(base.unet, ControlNetConfig(hint_channels=HINT, **options))
    # Perturb the trainable copy: with zero convs at zero it still must not change anything.
    with torch.no_grad():
        for p in net.encoder.parameters():
            p.add_(torch.randn_like(p))
    training = ControlNetTraining(base, net)
    x, t, y, _ = batch()
    for seed in range(3):
        cond = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 10 - 5
        with torch.no_grad():
            assert torch.equal(training.denoiser(x, t, {"labels": y, "image": cond}), base.unet(x, t, y))


def test_gradient_reaches_the_zero_convs_at_initialisation():
    base = tiny_base()
    net = ControlNet(base.unet, ControlNetConfig(hint_channels=HINT))
    training = ControlNetTraining(base, net, p_uncond=0.0)
    x, t, y, cond = batch(8)
    torch.manual_seed(0)
    training.loss((x.clamp(-1, 1)), y.clamp(max=9), cond).backward()
    zero_grads = [p.grad for n, p in net.named_parameters() if "zero_conv" in n and "hint" not in n and "weight" in n]
    assert zero_grads and all(g is not None and g.abs().sum() > 0 for g in zero_grads)
    # dL/dW of a zero conv is its (non-zero) input; the copy's own gradient is 0 until the convs move.
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in net.encoder.parameters())
    assert all(p.grad is None for p in base.parameters())


def test_scale_zero_and_empty_window_give_exactly_the_base_samples():
    base = tiny_base()
    net = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT)))
    labels = torch.tensor([1, 2, 3, 4])
    cond = torch.rand(1, 1, 32, 32)
    reference = sample_digits(base, labels, "cfg", 3.0, "constant", "ddim", 6, seed=3)
    for control in (Control(net, cond, scale=0.0), Control(net, cond, scale=2.0, start=0.5, end=0.5)):
        controlled = ControlledDenoiser(base, [control])
        conds = controlled.conditions(labels, base.null_class, uncond_control=True)
        out = sample_digits(base, labels, "cfg", 3.0, "constant", "ddim", 6, seed=3, denoiser=controlled,
                            conditions=conds, on_step=controlled.observe)
        assert torch.equal(out, reference)
    # ... and a working control does change them
    controlled = ControlledDenoiser(base, [Control(net, cond, scale=1.0)])
    out = sample_digits(base, labels, "cfg", 3.0, "constant", "ddim", 6, seed=3, denoiser=controlled,
                        conditions=controlled.conditions(labels, base.null_class), on_step=controlled.observe)
    assert not torch.allclose(out, reference)


def test_two_controls_give_the_sum_of_each_alone():
    base = tiny_base()
    net_a = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT)), 1)
    net_b = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(kind="scribble", hint_channels=HINT)), 2)
    x, t, y, _ = batch()
    img_a, img_b = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    a, b = 0.7, 1.8

    def residuals(controls):
        dn = ControlledDenoiser(base, controls)
        cond = dn.conditions(y, base.null_class)["cond"]
        with torch.no_grad():
            return dn.residuals(x, t, y, cond["control"])

    both = residuals([Control(net_a, img_a, a), Control(net_b, img_b, b)])
    only_a = residuals([Control(net_a, img_a, a)])
    only_b = residuals([Control(net_b, img_b, b)])
    for r, ra, rb in zip(both[0] + [both[1]], only_a[0] + [only_a[1]], only_b[0] + [only_b[1]]):
        torch.testing.assert_close(r, ra + rb, rtol=0, atol=1e-6)
    # scale is linear: scale a gives a times the scale-1 residuals
    one = residuals([Control(net_a, img_a, 1.0)])
    torch.testing.assert_close(only_a[1], a * one[1], rtol=1e-6, atol=1e-7)


def test_unconditional_branch_is_controlled_by_default_as_the_references_do():
    base = tiny_base()
    net = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT)))
    x, t, y, _ = batch()
    null = torch.full_like(y, base.null_class)
    cond_image = torch.rand(1, 1, 32, 32)
    dn = ControlledDenoiser(base, [Control(net, cond_image, 1.0)])
    conds = dn.conditions(y, base.null_class)
    with torch.no_grad():
        # the original and diffusers (outside guess mode) run the ControlNet on the unconditional batch
        # with the same condition and scale: the uncond branch is the controlled net at the null label
        down, mid = net(x, t, null, cond=cond_image.expand(4, -1, -1, -1))
        assert torch.equal(dn(x, t, conds["uncond"]), base.unet(x, t, null, down_residuals=down, mid_residual=mid))
        assert not torch.equal(dn(x, t, conds["cond"]), base.unet(x, t, y))
        off = ControlledDenoiser(base, dn.controls).conditions(y, base.null_class, uncond_control=False)
        assert torch.equal(dn(x, t, off["uncond"]), base.unet(x, t, null))
        assert torch.equal(dn(x, t, off["cond"]), dn(x, t, conds["cond"]))


@pytest.mark.parametrize("rule", ["none", "cfg", "negative", "cfg++", "apg", "classifier"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "edm-heun"])
def test_control_works_with_every_rule_and_sampler(rule, sampler):
    base = tiny_base()
    net = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT)))
    labels = torch.tensor([0, 5])
    negative = torch.tensor([3, 3]) if rule == "negative" else None
    options = {"classifier": lambda x, t: torch.stack([x.mean((1, 2, 3))] * 10, 1), "labels": labels} \
        if rule == "classifier" else {}
    image = torch.rand(1, 1, 32, 32)

    def controlled(scale: float) -> torch.Tensor:
        dn = ControlledDenoiser(base, [Control(net, image, scale, 0.2, 0.8)])
        return sample_digits(base, labels, make_rule(rule, **options), 2.0, "linear", sampler, 4, seed=0, negative=negative,
                             denoiser=dn, conditions=dn.conditions(labels, base.null_class, negative=negative),
                             on_step=dn.observe)

    out = controlled(1.0)
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()
    plain = sample_digits(base, labels, make_rule(rule, **options), 2.0, "linear", sampler, 4, seed=0, negative=negative)
    assert torch.equal(controlled(0.0), plain)  # control scale 0 is the base model, bit for bit
    assert not torch.equal(out, plain)


def test_window_follows_diffusers_convention():
    assert [active_in_window(i, 10, 0.2, 0.7) for i in range(10)] == [False, False, True, True, True, True, True,
                                                                       False, False, False]
    assert not any(active_in_window(i, 10, 0.5, 0.5) for i in range(10))
    assert all(active_in_window(i, 7, 0.0, 1.0) for i in range(7))


def test_per_output_scales_and_bad_values():
    base = tiny_base()
    net = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT)))
    x, t, y, cond = batch()
    scales = net.guess_mode_scales()
    with torch.no_grad():
        d1, m1 = net(x, t, y, cond=cond)
        d2, m2 = net(x, t, y, cond=cond, output_scales=scales)
    torch.testing.assert_close(d2[0], d1[0] * scales[0])
    torch.testing.assert_close(m2, m1 * scales[-1])
    with pytest.raises(StorylabError, match=">= 0"):
        Control(net, cond, scale=-1.0)
    with pytest.raises(StorylabError, match="start must be <= end"):
        Control(net, cond, start=0.8, end=0.2)
    with pytest.raises(StorylabError, match="32x32"):
        net(x, t, y, cond=torch.rand(4, 1, 16, 16))


def test_guess_mode_scales_follow_diffusers_and_give_the_middle_block_one():
    # diffusers: scales = logspace(-1, 0, n_down + 1) * conditioning_scale; down i gets scales[i], mid scales[-1]
    for k in (1, 2, 6):
        expected = [10 ** (-1 + i / k) for i in range(k + 1)]
        assert guess_mode_scales(k) == pytest.approx(expected, rel=1e-12)
        assert guess_mode_scales(k)[-1] == 1.0
    assert guess_mode_scales(6, mid_only=True) == [1.0]
    assert guess_mode_scales(0) == [1.0]
    base = tiny_base()
    skips = len(base.unet.encoder.skip_channels)
    full = ControlNet(base.unet, ControlNetConfig(hint_channels=HINT))
    mid_only = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(hint_channels=HINT, mid_only=True)))
    assert full.guess_mode_scales() == pytest.approx([10 ** (-1 + i / skips) for i in range(skips + 1)], rel=1e-12)
    assert len(full.guess_mode_scales()) == full.num_outputs
    assert mid_only.guess_mode_scales() == [1.0]
    x, t, y, cond = batch()
    with torch.no_grad():
        _, m1 = mid_only(x, t, y, cond=cond)
        _, m2 = mid_only(x, t, y, cond=cond, output_scales=mid_only.guess_mode_scales())
    assert torch.equal(m1, m2)  # the middle block keeps its full strength in guess mode


def test_checkpoint_round_trip_and_base_identity(tmp_path):
    base = tiny_base()
    net = randomise_zero_convs(ControlNet(base.unet, ControlNetConfig(kind="edges", hint_channels=HINT)))
    path = save_controlnet(tmp_path / "cn.safetensors", net, base, {"seed": 0})
    again = load_controlnet(path, base)
    assert again.config.kind == "canny" and again.config.hint_channels == HINT
    x, t, y, cond = batch()
    with torch.no_grad():
        torch.testing.assert_close(again(x, t, y, cond=cond)[1], net(x, t, y, cond=cond)[1])
    other = tiny_base(seed=5)
    with pytest.raises(StorylabError, match="another base model"):
        load_controlnet(path, other)
