"""Digit denoiser: data split, UNet shapes, tiny training, sampling with every rule, CLI bad input."""


import pytest
import torch

from storylab.errors import StorylabError
from storylab.guidance import make_rule
from storylab.images.networks.denoiser import (DigitDiffusion, DigitDiffusionConfig, load_digit_model, sample_digits,
                                      save_digit_model, train_digit_model)
from storylab.images.data.digits import load_digits_split
from storylab.images.networks.noisy_classifier import ClassifierConfig, NoisyDigitClassifier, load_classifier, save_classifier
from storylab.images.networks.unet import DigitUNet, UNetConfig
from storylab.training import TrainConfig, save_checkpoint
from tests.cli_runner import run_cli

TINY = UNetConfig(channels=8, emb_dim=16, groups=4)


def test_digits_split_is_fixed_and_in_model_range():
    train, test = load_digits_split("train"), load_digits_split("test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape[1:] == (1, 8, 8)
    assert train.images.min() == -1 and train.images.max() == 1
    assert torch.equal(torch.bincount(test.labels), torch.bincount(load_digits_split("test").labels))
    assert set(test.labels.tolist()) == set(range(10))


def test_unet_output_shape_and_skip_count():
    net = DigitUNet(TINY)
    x = torch.randn(3, 1, 8, 8)
    out = net(x, torch.tensor([0, 500, 999]), torch.tensor([1, 2, 10]))
    assert out.shape == x.shape
    emb = net.encoder.embed(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    skips, mid = net.encoder(x, emb)
    assert [s.shape[1] for s in skips] == net.encoder.skip_channels
    assert mid.shape[1] == net.encoder.mid_channels


def test_zero_residuals_leave_the_output_unchanged():
    net = DigitUNet(TINY).eval()
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([10, 900]), torch.tensor([3, 10])
    emb = net.encoder.embed(t, y)
    skips, mid = net.encoder(x, emb)
    zeros = [torch.zeros_like(s) for s in skips]
    assert torch.equal(net(x, t, y), net(x, t, y, zeros, torch.zeros_like(mid)))


def test_tiny_training_lowers_the_loss_and_saves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "d.safetensors"
    cfg = DigitDiffusionConfig(unet=TINY, num_timesteps=100)
    tc = TrainConfig(steps=30, lr=3e-3, warmup_steps=3, ema_decay=0.9, checkpoint_every=15, log_every=10, progress=False)
    model, info = train_digit_model(out, cfg, tc, batch_size=32, resume=False)
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    again = load_digit_model(out)
    assert again.config.num_timesteps == 100 and again.num_classes == 10


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return DigitDiffusion(DigitDiffusionConfig(unet=TINY, num_timesteps=100)).eval()


@pytest.mark.parametrize("rule", ["none", "cfg", "cfg++", "apg"])
@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "edm-heun"])
def test_sampling_works_with_every_rule_and_sampler(tiny_model, rule, sampler):
    labels = torch.tensor([0, 1, 2])
    images = sample_digits(tiny_model, labels, rule, 2.0, "linear", sampler, 4, seed=1)
    assert images.shape == (3, 1, 8, 8) and torch.isfinite(images).all()
    assert images.min() >= -1 and images.max() <= 1
    conditional = sample_digits(tiny_model, labels, "none", 1.0, "constant", sampler, 4, seed=1)
    # value level: a schedule that guides no step is plain conditional sampling for every rule ...
    unguided = sample_digits(tiny_model, labels, rule, 2.0, "diffusers-interval:start=0,stop=0", sampler, 4, seed=1)
    assert torch.allclose(unguided, conditional, atol=1e-6)
    if rule != "cfg++":  # ... and scale 1 is conditional (CFG++'s lambda 1 still renoises with eps_u)
        assert torch.allclose(sample_digits(tiny_model, labels, rule, 1.0, "linear", sampler, 4, seed=1), conditional,
                              atol=1e-6)
    else:
        assert not torch.allclose(images, conditional, atol=1e-4)  # lambda = 2 (linear, peak 2) does guide


def test_cfg_scale_one_equals_unguided_sampling(tiny_model):
    labels = torch.tensor([4, 5])
    a = sample_digits(tiny_model, labels, "cfg", 1.0, "cosine", "ddim", 5, seed=3)
    b = sample_digits(tiny_model, labels, "none", 1.0, "constant", "ddim", 5, seed=3)
    assert torch.allclose(a, b, atol=1e-6)


def test_classifier_guidance_with_gamma_zero_equals_unguided(tiny_model):
    clf = NoisyDigitClassifier(ClassifierConfig(channels=8, emb_dim=16, groups=4, num_timesteps=100))
    labels = torch.tensor([7, 8])
    rule = make_rule("classifier", classifier=clf, labels=labels)
    a = sample_digits(tiny_model, labels, rule, 0.0, "constant", "ddim", 5, seed=2)
    b = sample_digits(tiny_model, labels, "none", 1.0, "constant", "ddim", 5, seed=2)
    assert torch.allclose(a, b, atol=1e-6)
    c = sample_digits(tiny_model, labels, rule, 5.0, "constant", "ddim", 5, seed=2)
    assert not torch.allclose(a, c)


def test_checkpoint_kind_and_class_count_are_checked(tmp_path, tiny_model):
    path = save_digit_model(tmp_path / "m.safetensors", tiny_model)
    with pytest.raises(StorylabError, match="trained for 10 classes, but 12"):
        load_digit_model(path, num_classes=12)
    clf_path = save_classifier(tmp_path / "c.safetensors",
                               NoisyDigitClassifier(ClassifierConfig(channels=8, emb_dim=16, groups=4)))
    with pytest.raises(StorylabError, match="is a 'digits-noisy-classifier' checkpoint, expected 'digits-denoiser'"):
        load_digit_model(clf_path)
    with pytest.raises(StorylabError, match="classifies 10 classes, but the denoiser has 5"):
        load_classifier(clf_path, num_classes=5)


def _cli(*args):
    return run_cli(*args)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_model):
    return save_digit_model(tmp_path_factory.mktemp("ck") / "tiny.safetensors", tiny_model)


def test_sample_digits_cli_writes_a_png(tmp_path, tiny_ckpt):
    out = tmp_path / "grid.png"
    res = _cli("sample", "digits", "--checkpoint", str(tiny_ckpt), "--steps", "3", "--per-class", "2",
               "--schedule", "clamp:linear:c=2", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image
    assert Image.open(out).size[1] > Image.open(out).size[0]  # 10 rows of 2


@pytest.mark.parametrize("args,needle", [
    (("--schedule", "pcs:s=-1"), "pcs exponent s must be > 0"),
    (("--schedule", "clamp:c=abc"), "expected clamp:<shape>:c=<floor>"),
    (("--schedule", "bogus"), "unknown schedule 'bogus'"),
    (("--scale", "-2"), "Invalid value for '--scale': must be 0<=x<=1000"),
    (("--guidance", "magic"), "unknown guidance 'magic'"),
    (("--sampler", "euler"), "unknown sampler 'euler'"),
    (("--classes", "3,12"), "--classes must name classes between 0 and 9"),
    (("--checkpoint", "/nonexistent/x.safetensors"), "checkpoint not found"),
])
def test_sample_digits_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_ckpt, args, needle):
    out = tmp_path / "grid.png"
    base = ["sample", "digits", "--steps", "2", "--per-class", "1", "--out", str(out)]
    if "--checkpoint" not in args:
        base += ["--checkpoint", str(tiny_ckpt)]
    res = _cli(*base, *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_foreign_checkpoint_is_rejected_by_the_cli(tmp_path):
    foreign = save_checkpoint(tmp_path / "f.safetensors", {"w": torch.zeros(2)}, "camera-director", {})
    res = _cli("sample", "digits", "--checkpoint", str(foreign), "--out", str(tmp_path / "g.png"))
    assert res.returncode == 2 and "is a 'camera-director' checkpoint" in res.stderr


def test_train_digits_cli_resumes_a_killed_run(tmp_path):
    out = tmp_path / "d.safetensors"
    first = _cli("train", "digits", "--out", str(out), "--steps", "4", "--channels", "8", "--batch-size", "16",
                 "--no-progress")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "d.state.safetensors").exists()
    second = _cli("train", "digits", "--out", str(out), "--steps", "6", "--channels", "8", "--batch-size", "16",
                  "--no-progress")
    assert second.returncode == 0, second.stderr
    assert "resuming train digits from step 4" in second.stdout
    assert load_digit_model(out).config.unet.channels == 8


def test_train_digits_cli_rejects_bad_settings(tmp_path):
    res = _cli("train", "digits", "--out", str(tmp_path / "d.safetensors"), "--prediction", "score")
    assert res.returncode == 2 and "unknown --prediction 'score'" in res.stderr
    assert list(tmp_path.iterdir()) == []
