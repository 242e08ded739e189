"""ControlNet at the base's size (issue 17): 28x28 shapes, zero-init identity, the wrong base, the shipped Fashion-MNIST net."""

import numpy as np
import pytest
import torch
from PIL import Image

from storylab.errors import StorylabError
from storylab.images.assets import DENOISER, shipped
from storylab.images.commands.control_cli import condition_size, controlnet_section, shipped_controlnet
from storylab.images.control.controlnet import (ControlNet, ControlNetConfig, ControlNetTraining, base_identity,
                                                hint_channels_for, save_controlnet)
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, load_digit_model
from storylab.images.networks.unet import UNetConfig
from tests.cli_runner import run_cli

TINY_28 = DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4), num_timesteps=100,
                               data="fashion-mnist", image_size=28)
FASHION_CN = shipped_controlnet("canny", "fashion-mnist")


@pytest.fixture
def no_fashion_data(tmp_path, monkeypatch):
    """Fashion-MNIST's IDX folder moved away: what a fresh install without the Debian package sees."""
    monkeypatch.setenv("STORYLAB_FASHION_MNIST", str(tmp_path / "absent"))


def tiny_base_28(seed: int = 0) -> DigitDiffusion:
    torch.manual_seed(seed)
    return DigitDiffusion(TINY_28).eval()


def test_condition_sizes_follow_the_base_and_the_digits_keep_32():
    assert ControlNetConfig(hint_channels=hint_channels_for(8), image_size=8).cond_size == 32 == condition_size("digits")
    assert ControlNetConfig(hint_channels=hint_channels_for(28), image_size=28).cond_size == 56 == condition_size("fashion-mnist")
    assert ControlNetConfig().cond_size == 32  # a checkpoint older than the field: the 8x8 digits


def test_28x28_residuals_match_every_skip_and_the_middle_block():
    base = tiny_base_28()
    net = ControlNet(base.unet, ControlNetConfig(hint_channels=(4, 8), image_size=28))
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([3, 90]), torch.tensor([1, 10])
    hint = net.encode_condition(torch.rand(2, 1, 56, 56))
    assert hint.shape == (2, 8, 28, 28)  # conv_in width at the base's resolution
    down, mid = net(x, t, y, hint=hint)
    skips, h = base.unet.encoder(x, base.unet.encoder.embed(t, y))
    assert [d.shape for d in down] == [s.shape for s in skips] and mid.shape == h.shape
    assert {s.shape[-1] for s in skips} == {28, 14, 7}
    with pytest.raises(StorylabError, match=r"^condition must be 56x56, got \(32, 32\)$"):
        net.encode_condition(torch.rand(2, 1, 32, 32))


def test_zero_initialised_28x28_controlnet_equals_the_base_for_any_condition():
    base = tiny_base_28()
    net = ControlNet(base.unet, ControlNetConfig(hint_channels=(4, 8), image_size=28))
    with torch.no_grad():  # a perturbed trainable copy changes nothing while the zero convs are zero
        for p in net.encoder.parameters():
            p.add_(torch.randn_like(p))
    training = ControlNetTraining(base, net)
    gen = torch.Generator().manual_seed(0)
    x, t, y = torch.randn(3, 1, 28, 28, generator=gen), torch.tensor([0, 50, 99]), torch.tensor([0, 9, 10])
    for seed in range(3):
        cond = torch.rand(3, 1, 56, 56, generator=torch.Generator().manual_seed(seed)) * 10 - 5
        with torch.no_grad():
            assert torch.equal(training.denoiser(x, t, {"labels": y, "image": cond}), base.unet(x, t, y))


def test_a_controlnet_of_another_base_is_one_exact_error_line(tmp_path):
    fashion = load_digit_model(shipped("fashion-mnist", "denoiser"))
    digits = load_digit_model(DENOISER)
    path = tmp_path / "cn.safetensors"
    save_controlnet(path, ControlNet(fashion.unet, ControlNetConfig(hint_channels=(16, 32), image_size=28)), fashion)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / "c.png")
    result = run_cli("sample", "digits", "--classes", "none", "--per-class", "1", "--steps", "2",
                     "--control", f"{path}={tmp_path / 'c.png'}", "--out", tmp_path / "s.png",
                     "--no-progress")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: {path} was trained for another base model (fashion-mnist 28x28 denoiser "
        f"{base_identity(fashion)[:12]}, this one is digits 8x8 {base_identity(digits)[:12]}); "
        "retrain it with --base pointing at this denoiser"]
    assert not (tmp_path / "s.png").exists()


def test_shipped_fashion_controlnet_extracts_and_samples_without_the_data_package(no_fashion_data, tmp_path):
    assert FASHION_CN == shipped("fashion-mnist", "controlnet_canny") and FASHION_CN.exists()
    picture = np.zeros((80, 80), np.uint8)
    picture[15:65, 25:55] = 255  # a bright box on black: its edges are the condition
    Image.fromarray(picture).save(tmp_path / "box.png")
    result = run_cli("control", "extract", "canny", tmp_path / "box.png", "--data", "fashion-mnist", "--out",
                     tmp_path / "cond.png")
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "cond.png").size == (56, 56)
    result = run_cli("sample", "fashion-mnist", "--classes", "none", "--per-class", "2", "--steps", "3",
                     "--control", f"canny={tmp_path / 'cond.png'}", "--out", tmp_path / "s.png", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").stat().st_size > 0


def test_fashion_panel_renders_without_the_data_package(no_fashion_data, tmp_path):
    section = controlnet_section(tmp_path, seed=0, per_condition=2, steps=3, data="fashion-mnist")
    assert section["images"] == ["fashion_mnist_controlnet.png"]
    assert (tmp_path / "fashion_mnist_controlnet.png").stat().st_size > 0
    assert len(section["rows"]) == 2 and {r[0] for r in section["rows"]} == {"canny"}
    assert "base-model sample" in section["note"]
    names = {r[1] for r in section["rows"]} - {"none"}
    assert names <= {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"} and len(names) == 1


def test_train_controlnet_refuses_a_base_of_another_data_set(tmp_path):
    result = run_cli("train", "controlnet", "--data", "fashion-mnist", "--base", DENOISER, "--steps", "1",
                     "--out", tmp_path / "cn.safetensors", "--no-progress")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: --base {DENOISER} is a 'digits' denoiser, but --data names 'fashion-mnist' "
        "(a ControlNet trains on its base's data set)"]
    assert not (tmp_path / "cn.safetensors").exists()


def test_evaluate_controlnet_on_a_data_set_without_a_shipped_base_is_one_line(tmp_path):
    result = run_cli("evaluate", "controlnet", "--data", "mnist", "--out", tmp_path / "eval", "--no-progress")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: no shipped denoiser for data set 'mnist': train one (`storylab train mnist`) and pass it as --base"]
