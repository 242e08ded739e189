"""The lectures' guided-diffusion figures (issue 17, point 6): the guidance-scale sweep and the nearest training images."""

import math

import pytest
import torch
from PIL import Image

from storylab.errors import StorylabError
from storylab.guidance import make_rule
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, sample_digits
from storylab.images.study.nearest import memorisation_check, nearest_neighbours
from storylab.images.study.sampling import parse_sweep, scale_sweep
from storylab.images.networks.unet import UNetConfig
from storylab.metrics.feature_net import FeatureNetConfig, SmallImageClassifier
from tests.cli_runner import run_cli

TINY = DigitDiffusionConfig(unet=UNetConfig(channels=8, emb_dim=16, groups=4), num_timesteps=100)


def tiny_base() -> DigitDiffusion:
    torch.manual_seed(0)
    return DigitDiffusion(TINY).eval()


def test_parse_sweep_is_an_inclusive_linspace_and_bad_specs_are_one_line():
    assert parse_sweep("0:5.5:12") == [0.5 * i for i in range(12)]
    assert parse_sweep("1:2:3") == [1.0, 1.5, 2.0]
    for text, message in (("0:5.5", "START:STOP:COUNT"), ("a:1:3", "START:STOP:COUNT"), ("0:1:1", "between 2 and 64"),
                          ("-1:2:3", ">= 0"), ("2:1:3", "greater than START"), ("0:inf:3", "finite")):
        with pytest.raises(StorylabError, match=message):
            parse_sweep(text)


@pytest.mark.parametrize("schedule, sampler", [("constant", "ddim"), ("linear", "ddpm")])
def test_sweep_column_at_scale_one_is_the_conditional_sample(schedule, sampler):
    base = tiny_base()
    labels = torch.tensor([0, 3, 3, 7])
    scales = parse_sweep("0:5.5:12")
    sweep = scale_sweep(lambda s: sample_digits(base, labels, "cfg", s, schedule, sampler, 3, seed=5), scales)
    assert sweep.shape == (4, 12, 1, 8, 8)
    conditional = sample_digits(base, labels, "none", 1.0, "constant", sampler, 3, seed=5)
    assert torch.equal(sweep[:, scales.index(1.0)], conditional)
    if schedule == "constant":  # (a schedule reshapes w(t) = scale - 1 around its mean, so only 1 is exact for all)
        # scale 0 is the unconditional model: the null label, no guidance, same noise
        unconditional = sample_digits(base, torch.full_like(labels, base.null_class), "none", 1.0, "constant", sampler, 3, seed=5)
        assert torch.equal(sweep[:, 0], unconditional)
    assert not torch.equal(sweep[:, -1], conditional)  # guidance acts further along


def test_classifier_guidance_sweep_starts_at_the_conditional_sample():
    base = tiny_base()
    labels = torch.tensor([1, 4])
    rule = make_rule("classifier", classifier=lambda x, t: torch.stack([x.mean((1, 2, 3)) * c for c in range(10)], 1),
                     labels=labels)
    scales = parse_sweep("0:2:3")
    sweep = scale_sweep(lambda s: sample_digits(base, labels, rule, s, "linear", "ddim", 3, seed=1), scales)
    assert torch.equal(sweep[:, 0], sample_digits(base, labels, "none", 1.0, "constant", "ddim", 3, seed=1))
    assert not torch.equal(sweep[:, 2], sweep[:, 0])


def test_nearest_neighbours_match_a_brute_force_search():
    gen = torch.Generator().manual_seed(0)
    queries, reference = torch.randn(7, 5, generator=gen), torch.randn(40, 5, generator=gen)
    found = nearest_neighbours(queries, reference, 3)
    for i, q in enumerate(queries.tolist()):
        brute = sorted((math.dist(q, r), j) for j, r in enumerate(reference.tolist()))[:3]
        assert found.indices[i].tolist() == [j for _, j in brute]
        assert found.distances[i].tolist() == pytest.approx([d for d, _ in brute], rel=1e-6)
    with pytest.raises(StorylabError, match="between 1 and the 40 training images"):
        nearest_neighbours(queries, reference, 41)


def test_a_copied_training_image_is_its_own_nearest_neighbour_at_distance_zero():
    torch.manual_seed(0)
    net = SmallImageClassifier(FeatureNetConfig()).eval()
    train = torch.rand(30, 1, 8, 8) * 2 - 1
    samples = torch.cat([train[[4, 17]], torch.rand(1, 1, 8, 8) * 2 - 1])
    check = memorisation_check(samples, train, net, 2, held_out=torch.rand(5, 1, 8, 8) * 2 - 1)
    assert check.neighbours.indices[:2, 0].tolist() == [4, 17]
    assert check.neighbours.distances[:2, 0].tolist() == pytest.approx([0.0, 0.0], abs=1e-5)  # same image, other batch
    assert float(check.neighbours.distances[2, 0]) > 0 and check.held_out_nearest.shape == (5,)


def test_sample_command_draws_both_figures_and_refuses_bad_input(tmp_path):
    sweep = tmp_path / "sweep.png"
    r = run_cli("sample", "digits", "--sweep-scale", "0:2:3", "--classes", "0,7", "--per-class", "1", "--steps", "2",
                "--out", sweep, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "adherence" in r.stdout and Image.open(sweep).size[0] > 200
    near = tmp_path / "near.png"
    r = run_cli("sample", "digits", "--nearest", "2", "--guidance", "classifier", "--classes", "3", "--per-class", "2",
                "--steps", "2", "--out", near)
    assert r.returncode == 0, r.stderr
    assert "held-out real images" in r.stdout and near.exists()
    for args, message in ((["--sweep-scale", "0:1"], "START:STOP:COUNT"), (["--sweep-scale", "0:1:3", "--nearest", "2"], "use one of them"),
                          (["--nearest", "-1"], "--nearest must be >= 1"), (["--nearest", "5000"], "between 1 and the 1437"),
                          (["--control-polarity", "upside"], "unknown --control-polarity")):
        bad = tmp_path / "bad.png"
        r = run_cli("sample", "digits", "--steps", "1", "--per-class", "1", "--classes", "1", "--out", bad, *args)
        assert r.returncode != 0 and r.stderr.strip().startswith("error:") and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and not bad.exists()
