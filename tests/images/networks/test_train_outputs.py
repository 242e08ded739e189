"""Training commands write to runs/ under the current directory by default, never over the shipped checkpoints."""

import hashlib

import pytest
import torch
import typer

from storylab.images.assets import ASSETS, CLASSIFIER, DENOISER
from storylab.images.control.controlnet import load_controlnet
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, load_digit_model, save_digit_model
from storylab.images.networks.noisy_classifier import load_classifier
from storylab.images.networks.unet import UNetConfig
from storylab.images.zoo import load_zoo_model
from tests.cli_runner import run_cli

TINY = DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4), num_timesteps=100)
QUIET = ("--no-progress", "--no-resume")


def snapshot_assets() -> dict[str, tuple[int, int, str]]:
    """Size, mtime and SHA-256 of every file shipped in storylab/assets/images."""
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(ASSETS.iterdir()) if p.is_file()}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty working directory; fail if any shipped checkpoint changed."""
    monkeypatch.chdir(tmp_path)
    before = snapshot_assets()
    yield tmp_path
    assert snapshot_assets() == before, "a training command modified the shipped assets"


def _trained(result, path):
    assert result.returncode == 0, result.stderr
    assert path.is_file(), sorted(p.name for p in path.parent.parent.rglob("*"))
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("use it with: storylab "), result.stdout
    return last


def test_train_digits_defaults_to_runs(in_tmp):
    result = run_cli("train", "digits", "--steps", "2", "--channels", "8", "--batch-size", "8", *QUIET)
    last = _trained(result, in_tmp / "runs" / "digits_denoiser.safetensors")
    assert last == "use it with: storylab sample digits --checkpoint runs/digits_denoiser.safetensors"
    assert load_digit_model(in_tmp / "runs" / "digits_denoiser.safetensors").config.unet.channels == 8


def test_train_classifier_defaults_to_runs(in_tmp):
    result = run_cli("train", "classifier", "--steps", "2", "--channels", "8", "--batch-size", "8", *QUIET)
    last = _trained(result, in_tmp / "runs" / "digits_classifier.safetensors")
    assert last == ("use it with: storylab sample digits --guidance classifier "
                    "--classifier runs/digits_classifier.safetensors")
    load_classifier(in_tmp / "runs" / "digits_classifier.safetensors", num_classes=10)


@pytest.mark.parametrize("family, args", [("ae", ("--width", "4", "--latent-dim", "4")),
                                          ("gan", ("--width", "4", "--latent-dim", "4"))])
def test_train_zoo_defaults_to_runs(in_tmp, family, args):
    result = run_cli("train", family, "digits", "--steps", "2", "--batch-size", "8", *args, *QUIET)
    out = in_tmp / "runs" / f"zoo_{family}.safetensors"
    last = _trained(result, out)
    assert last.startswith(f"use it with: storylab sample {family} --checkpoint runs/zoo_{family}.safetensors")
    assert f"--checkpoints {family}=runs/zoo_{family}.safetensors" in last
    load_zoo_model(out, family)


def test_train_controlnet_defaults_to_runs(in_tmp):
    torch.manual_seed(0)
    base = save_digit_model(in_tmp / "base.safetensors", DigitDiffusion(TINY))
    result = run_cli("train", "controlnet", "--condition", "edges", "--base", "base.safetensors", "--steps", "2",
                     "--batch-size", "4", "--eval-every", "2", "--eval-count", "2", *QUIET)
    out = in_tmp / "runs" / "controlnet_canny.safetensors"  # edges = canny
    last = _trained(result, out)
    assert last.startswith("use it with: storylab sample digits --checkpoint base.safetensors --classes none "
                           "--control runs/controlnet_canny.safetensors=condition.png")
    assert "storylab control extract canny" in last
    load_controlnet(out, load_digit_model(base))
    assert (in_tmp / "runs" / "controlnet_canny.convergence.png").stat().st_size > 0  # the curve sits beside it
    assert not (in_tmp / "convergence.png").exists()


def _param(path: tuple[str, ...], name: str):
    """The click parameter ``name`` of the storylab command at ``path`` (e.g. ``("train", "digits")``)."""
    import storylab.cli  # noqa: F401  (registers every command)
    from storylab.cli_groups import app

    command = typer.main.get_command(app)
    for part in path:
        command = command.commands[part]
    return next(p for p in command.params if p.name == name)


@pytest.mark.parametrize("path, default", [
    (("train", "digits"), "runs/digits_denoiser.safetensors"),
    (("train", "classifier"), "runs/digits_classifier.safetensors"),
    (("train", "features"), "runs/digit_features.safetensors"),
    *[(("train", f), f"runs/zoo_{f}.safetensors") for f in ("ae", "vae", "cvae", "vqvae", "gan", "ldm")],
])
def test_every_trainer_defaults_out_to_runs(path, default):
    option = _param(path, "out")
    assert str(option.default) == default and option.show_default is not False  # --help prints [default: runs/...]
    assert not str(option.default).startswith(str(ASSETS))


def test_controlnet_out_help_states_the_default():
    option = _param(("train", "controlnet"), "out")
    assert option.default is None and "runs/controlnet_<kind>.safetensors" in option.help


@pytest.mark.parametrize("path, name, shipped", [
    (("sample", "digits"), "checkpoint", DENOISER), (("sample", "digits"), "classifier", CLASSIFIER),
    (("evaluate", "digits"), "checkpoint", DENOISER),
    (("train", "ldm"), "vae", ASSETS / "zoo_vae.safetensors"),
])
def test_reading_options_still_default_to_the_shipped_models(path, name, shipped):
    assert _param(path, name).default == shipped


@pytest.mark.parametrize("path", [("train", "controlnet"), ("evaluate", "controlnet")])
def test_controlnet_base_defaults_to_the_shipped_denoiser_of_the_data_set(path):
    from storylab.images.commands.control_cli import _shipped_base

    option = _param(path, "base")
    assert option.default is None and option.show_default == "the shipped denoiser of --data"
    assert _shipped_base("digits") == DENOISER
    assert _shipped_base("fashion-mnist") == ASSETS / "fashion_mnist_denoiser.safetensors"
