"""DIRECTOR and CLaTr training and the evaluation table, end to end on a tiny synthetic E.T. set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from storylab.camera.clatr import Clatr, ClatrConfig, embed_texts, embed_trajectories
from storylab.camera.evaluation import clatr_score
from storylab.camera.synth import SynthConfig, write_synth_dataset
from storylab.training import load_checkpoint
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("et")
    # written as the E.T. release lays it out: N-1 tag files, "%.6e" poses, float32 characters, intrinsics/,
    # mixed/pure splits without a trailing newline
    write_synth_dataset(str(root), 26, seed=3, test_fraction=6 / 26, cfg=SynthConfig(max_seconds=2.5), progress=False)
    return root


def test_clatr_score_is_floored_at_zero():
    a = torch.randn(5, 8)
    assert clatr_score(a, a) == pytest.approx(100.0)
    assert clatr_score(a, -a) == 0.0


def test_clatr_learns_to_retrieve_the_caption_of_a_trajectory():
    """Eight motion directions, one fixed 'sentence embedding' each: after training, every trajectory's
    embedding is closest to its own caption's (chance: 1/8)."""
    torch.manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(8, 3), dim=-1)
    texts = torch.randn(8, 16)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k = torch.arange(n) % 8
        x = torch.zeros(n, 20, 9)
        x[:, :, :6] = torch.tensor([1.0, 0, 0, 0, 1, 0])
        x[:, 1:, 6:] = directions[k, None] * 2 + 0.3 * torch.randn(n, 19, 3)
        return x, torch.ones(n, 20, dtype=torch.bool), k

    model = Clatr(ClatrConfig(d_model=32, latent=16, n_layers=1, n_heads=2, text_dim=16, max_frames=20))
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    for _ in range(120):
        x, mask, k = batch(32)
        loss, parts = model.loss(x, mask, texts[k])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, _, k = batch(64)
    traj = torch.nn.functional.normalize(embed_trajectories(model, [f.numpy() for f in x], sample=False), dim=-1)
    text = torch.nn.functional.normalize(embed_texts(model, texts, sample=False), dim=-1)
    accuracy = float(((traj @ text.T).argmax(1) == k).float().mean())
    assert accuracy >= 0.9, accuracy
    assert set(parts) == {"rec", "kl", "nce"}


def test_train_director_clatr_and_evaluate_end_to_end(tiny_set, tmp_path):
    ckpt, clatr, report = tmp_path / "c.safetensors", tmp_path / "clatr.safetensors", tmp_path / "r.json"
    result = run_cli("train", "director", "--data", str(tiny_set), "--steps", "3",
                     "--batch-size", "4", "--out", str(ckpt), "--eval-every", "3")
    assert result.returncode == 0, result.stderr
    assert "step 3: C-P" in result.stdout and "after 3 steps" in result.stdout
    assert load_checkpoint(ckpt, "director").extra["step"] == 3
    # the resume state is kept beside the checkpoint; a longer budget continues from step 3
    result = run_cli("train", "director", "--data", str(tiny_set), "--steps", "5",
                     "--batch-size", "4", "--out", str(ckpt))
    assert result.returncode == 0, result.stderr
    assert "after 5 steps" in result.stdout and load_checkpoint(ckpt, "director").extra["step"] == 5

    result = run_cli("train", "clatr", "--data", str(tiny_set), "--steps", "3",
                     "--batch-size", "4", "--out", str(clatr))
    assert result.returncode == 0, result.stderr
    assert f"evaluate director --data {tiny_set} --clatr {clatr}" in result.stdout

    result = run_cli("evaluate", "director", "--data", str(tiny_set), "--checkpoint", str(ckpt),
                     "--clatr", str(clatr), "--out", str(report), "--clatr-mean")
    assert result.returncode == 0, result.stderr
    rows = {r["method"]: r for r in json.loads(report.read_text())["results"]}
    assert set(rows) == {"C (crossattn)", "real data"}
    real = rows["real data"]
    # the real set against itself: re-tagging reproduces the reference tags, the mean embeddings coincide
    assert real["C-F1"] == pytest.approx(1.0) and real["FD_CLaTr"] == pytest.approx(0.0, abs=1e-6)
    assert real["P"] == real["R"] == real["C"] == 1.0
    assert 0.0 <= rows["C (crossattn)"]["C-F1"] <= 1.0
    assert "C-F1" in result.stdout and "FD_CLaTr order here: C" in result.stdout and "latent mean" in result.stdout

    # the paper's protocol: distribution metrics on the sorted train split in 5 chunks, latent draws
    result = run_cli("evaluate", "director", "--data", str(tiny_set), "--checkpoint", str(ckpt), "--clatr", str(clatr),
                     "--out", str(report), "--protocol", "paper", "--prdc-as-published")
    assert result.returncode == 0, result.stderr
    info = json.loads(report.read_text())
    assert (info["protocol"], info["subset"], info["prdc_as_published"], info["clatr_latent"]) == ("paper", "mixed", True, "draw")
    assert info["train_samples"] == 20 and info["test_samples"] == 6
    real = {r["method"]: r for r in info["results"]}["real data"]
    assert real["C-F1"] == pytest.approx(1.0) and real["FD_CLaTr"] > 0  # two independent latent draws
    assert "5 chunks" in result.stdout and "as published" in result.stdout


def test_evaluate_warns_or_fails_without_reference_tags(tiny_set, tmp_path):
    import shutil

    root = tmp_path / "no_tags"
    shutil.copytree(tiny_set, root)
    shutil.rmtree(root / "cam_segments")
    ckpt = tmp_path / "d.safetensors"
    assert run_cli("train", "director", "--data", str(root), "--steps", "1", "--batch-size", "4",
                   "--config", "incontext", "--out", str(ckpt)).returncode == 0
    args = ("evaluate", "director", "--data", str(root), "--checkpoint", str(ckpt), "--out", str(tmp_path / "r.json"))
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "warning: 6 of 6 test samples have no cam_segments/<id>.npy" in result.stderr
    assert "n/a" in result.stdout and json.loads((tmp_path / "r.json").read_text())["missing_tags"] == 6
    result = run_cli(*args[:-2], "--strict")
    assert result.returncode == 2 and result.stderr.startswith("error: 6 of 6 test samples have no cam_segments")
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_director_bad_inputs(tiny_set, tmp_path):
    result = run_cli("evaluate", "director", "--data", str(tiny_set), "--clatr",
                     str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "r.json"))
    assert result.returncode == 2 and "CLaTr checkpoint not found" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "r.json").exists()
    result = run_cli("train", "director", "--data", str(tmp_path / "nowhere"), "--steps", "1",
                     "--out", str(tmp_path / "d.safetensors"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "mixed_train_split.txt" in result.stderr and not (tmp_path / "d.safetensors").exists()
    result = run_cli("evaluate", "director", "--data", str(tiny_set), "--limit", "3")
    assert result.returncode == 2 and "k = 3 metrics need at least 4" in result.stderr, result.stderr
    for flag, value, message in (("--patch", "0", "Invalid value for '--patch': must be 1<=x<=1024, got 0"),
                                 ("--p-std", "0", "Invalid value for '--p-std': must be 0<x<=20, got 0.0")):
        result = run_cli("train", "director", "--data", str(tiny_set), flag, value, "--steps", "1",
                         "--out", str(tmp_path / "d.safetensors"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "d.safetensors").exists()


def test_train_director_writes_under_runs_by_default(tiny_set, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("train", "director", "--data", str(tiny_set), "--config", "adaln",
                     "--steps", "1", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "runs" / "director_adaln.safetensors").exists()
    assert "--checkpoint runs/director_adaln.safetensors" in result.stdout.splitlines()[-1]
    ckpt = load_checkpoint(tmp_path / "runs" / "director_adaln.safetensors")  # the tiny preset's recipe
    assert ckpt.config["patch"] == 2 and ckpt.extra["train_config"]["p_mean"] == -0.1
    result = run_cli("train", "director", "--data", str(tiny_set), "--config", "adaln", "--steps", "1",
                     "--batch-size", "4", "--patch", "1", "--p-mean", "-1.2", "--out", "paper_recipe.safetensors")
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(tmp_path / "paper_recipe.safetensors")
    assert ckpt.config["patch"] == 1 and ckpt.extra["train_config"]["p_mean"] == -1.2
    assert "--p-mean -1.2" in ckpt.extra["command"] and "--patch 1" in ckpt.extra["command"]


def test_prdc_as_published_swaps_roles_and_indexes_recall_by_position():
    from storylab.camera.evaluation import prdc_as_published
    from storylab.metrics import density_coverage, precision_recall

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(30, 4)), rng.normal(0.5, 1.0, size=(30, 4))
    p, r, d, c = prdc_as_published(real, fake, k=3)
    # its "precision" is the fraction of real samples inside generated k-NN balls: the definitions' recall
    assert p == pytest.approx(precision_recall(real, fake, k=3)[1])
    # density/coverage with the generated set in the role of the real one
    assert (d, c) == pytest.approx(density_coverage(fake, real, k=3))
    # recall written out: generated i is compared with the k-NN radius of *real i*
    dist = lambda a, b: np.linalg.norm(a - b)  # noqa: E731
    radius = [sorted(dist(x, y) for y in real)[3] for x in real]
    expected = np.mean([any(dist(fake[i], real[j]) < radius[i] for j in range(30)) for i in range(30)])
    assert r == pytest.approx(expected)


def test_clatr_embeddings_draw_from_the_latent_by_default():
    torch.manual_seed(0)
    model = Clatr(ClatrConfig(d_model=16, latent=4, n_layers=1, n_heads=2, text_dim=8)).eval()
    feats = [np.random.default_rng(i).normal(size=(12, 9)).astype(np.float32) for i in range(3)]
    mean = embed_trajectories(model, feats, sample=False)
    mu, logvar = model.encode_trajectory(torch.from_numpy(np.stack(feats)), torch.ones(3, 12, dtype=torch.bool))
    torch.testing.assert_close(mean, mu.detach(), atol=1e-5, rtol=1e-5)
    draw = embed_trajectories(model, feats, seed=5)
    torch.testing.assert_close(draw, embed_trajectories(model, feats, seed=5))  # repeatable per seed
    eps = (draw - mu.detach()) / (0.5 * logvar.detach()).exp()
    torch.testing.assert_close(eps, torch.randn(3, 4, generator=torch.Generator().manual_seed(5)), atol=1e-4, rtol=1e-4)
    text = torch.randn(3, 8)
    assert not torch.allclose(embed_texts(model, text), embed_texts(model, text, sample=False))
