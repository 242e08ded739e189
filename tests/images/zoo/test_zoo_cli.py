"""Model-zoo CLI: training, sampling and evaluation commands end to end (tiny), and bad input as one line."""

import json

import pytest
import torch

from storylab.images.zoo import save_zoo_model
from storylab.images.zoo.gan import GAN, GANConfig
from storylab.images.zoo.vae import VAE, VAEConfig
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    torch.manual_seed(0)
    paths = {"vae": folder / "vae.safetensors", "gan": folder / "gan.safetensors"}
    save_zoo_model(paths["vae"], VAE(VAEConfig(latent_dim=4, width=4, hidden=16)))
    save_zoo_model(paths["gan"], GAN(GANConfig(latent_dim=4, width=4)))
    return paths


def one_line_error(result, text):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, text", [
    (["train", "vae", "mnist"], "unknown dataset 'mnist'"),
    (["train", "vae", "digits", "--beta", "-1"], "Invalid value for '--beta': must be 0<=x<=1000"),
    (["train", "cvae", "digits", "--beta", "nan"], "Invalid value for '--beta': must be a finite number"),
    (["train", "vqvae", "digits", "--codebook-size", "1"], "codebook size must be an integer >= 2"),
    (["evaluate", "zoo", "--families", "ae,flow"], "unknown model family 'flow'"),
    (["evaluate", "zoo", "--families", "ae", "--checkpoints", "ae=/nonexistent.safetensors"], "ae checkpoint missing"),
])
def test_bad_input_is_one_clear_line(args, text, tmp_path):
    one_line_error(run_cli(*args, *(["--out", str(tmp_path / "x.safetensors")] if args[0] == "train" else [])), text)
    assert not (tmp_path / "x.safetensors").exists()


def test_sampling_with_the_wrong_family_is_one_clear_line(tiny, tmp_path):
    one_line_error(run_cli("sample", "gan", "--checkpoint", str(tiny["vae"]), "--out", str(tmp_path)),
                   "is a 'vae' checkpoint, expected 'gan'")
    assert list(tmp_path.iterdir()) == []


def test_nan_loss_stops_training_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "vae.safetensors"
    result = run_cli("train", "vae", "digits", "--out", str(out), "--steps", "40", "--lr", "1e30", "--no-progress")
    one_line_error(result, "loss became")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".state.safetensors")] in ([], ["vae.safetensors"])
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no half-written temporary files


def test_train_command_records_command_and_seed(tmp_path):
    from storylab.training import read_metadata

    out = tmp_path / "ae.safetensors"
    result = run_cli("train", "ae", "digits", "--out", str(out), "--steps", "3", "--width", "4", "--seed", "7",
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    extra = json.loads(read_metadata(out)["storylab.extra"])
    assert extra["seed"] == 7 and extra["command"].startswith("storylab train ae digits")


def test_sample_writes_samples_reconstructions_and_interpolations(tiny, tmp_path):
    result = run_cli("sample", "vae", "--checkpoint", str(tiny["vae"]), "--out", str(tmp_path), "--per-class", "2",
                     "--pairs", "2", "--steps", "4")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["interpolation.png", "reconstructions.png", "samples.png"]
    result = run_cli("sample", "gan", "--checkpoint", str(tiny["gan"]), "--out", str(tmp_path / "g"), "--pairs", "1",
                     "--steps", "3")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["interpolation.png", "samples.png"]


def test_evaluate_zoo_writes_json_markdown_and_figure(tiny, tmp_path):
    result = run_cli("evaluate", "zoo", "--families", "vae,gan", "--checkpoints", f"vae={tiny['vae']},gan={tiny['gan']}",
                     "--per-class", "3", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "zoo.json").read_text())
    assert [r["family"] for r in report["rows"]] == ["vae", "gan"]
    vae, gan = report["rows"]
    assert vae["reconstruction_mse"] > 0 and gan["reconstruction_mse"] is None
    assert vae["adherence"] is None and 0 <= vae["recall"] <= 1 and vae["fid"] > 0 and vae["active_units"] >= 0
    assert report["real_vs_real"]["fid"] > 0 and report["n_fake"] == 30
    assert "| VAE |" in (tmp_path / "zoo.md").read_text() and (tmp_path / "zoo.png").stat().st_size > 1000
    assert "real vs real" in result.stdout
