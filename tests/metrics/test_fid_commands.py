"""Every command that prints FID prints n, warns below 5 samples per feature dimension, and (image
wing) prints the real-vs-real floor with its spread.

The commands are found in the command tree (every command whose help names FID), grouped by the
function behind them (`evaluate digits|fashion-mnist|mnist` are one function with other defaults),
so a new FID command without a case here fails.
"""

import inspect
import re

import pytest
import typer

from storylab.images.data.reference import load_reference
from storylab.images.networks.feature_training import load_digit_feature_net
from storylab.metrics.floor import MIN_N_PER_DIM
from tests.cli_runner import run_cli


def fid_commands():
    """command path -> the function behind it, for every command whose help names FID."""
    from storylab.cli import app

    found = {}

    def walk(command, path=""):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())
            return
        text = (command.help or "") + " ".join(getattr(p, "help", "") or "" for p in command.params)
        if re.search(r"\bFID\b", text):
            found[path] = inspect.unwrap(command.callback).__qualname__

    walk(typer.main.get_command(app))
    return found


def feature_dim(data):
    return load_reference(data, load_digit_feature_net(data=data)).dim


def flat(text):
    return " ".join(text.split())  # rich wraps long lines at the console width


def check_warning_and_floor(stdout, n, dim, floor=True):
    text = flat(stdout)
    assert n < MIN_N_PER_DIM * dim  # the case is small enough to warn
    assert (f"warning: FID at n = {n} is not meaningful for {dim}-dimensional features "
            f"(needs n >= {MIN_N_PER_DIM * dim}, {MIN_N_PER_DIM} per dimension)") in text, text
    assert f"n = {n}" in text.replace(f"warning: FID at n = {n}", "")  # n is printed with the table too
    if floor:
        spreads = [float(s) for s in re.findall(r"\d+\.\d+ ± (\d+\.\d+)", text)]
        assert spreads and all(s > 0 for s in spreads), text  # the floor's spread, not just its mean


def evaluate_study(tmp_path):
    r = run_cli("evaluate", "digits", "--per-class", "1", "--steps", "2", "--schedules", "constant", "--scales", "3",
                "--out", tmp_path / "study")
    assert r.returncode == 0, r.stderr
    check_warning_and_floor(r.stdout, 10, feature_dim("digits"))


def evaluate_controlnet(tmp_path):
    r = run_cli("evaluate", "controlnet", "--count", "10", "--steps", "2", "--scales", "1", "--controlnets", "canny",
                "--no-progress", "--out", tmp_path / "ec")
    assert r.returncode == 0, r.stderr
    check_warning_and_floor(r.stdout, 10, feature_dim("digits"))


def evaluate_zoo(tmp_path):
    r = run_cli("evaluate", "zoo", "--families", "vae", "--per-class", "1", "--steps", "2", "--out", tmp_path / "ez")
    assert r.returncode == 0, r.stderr
    check_warning_and_floor(r.stdout, 10, feature_dim("digits"))


def evaluate_pipeline(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.foundation.tiny_pipelines import tiny_clip, tiny_sd

    tiny_sd(tmp_path / "build").save_pretrained(tmp_path / "sd")
    tiny_clip(tmp_path / "clip")
    (tmp_path / "prompts.txt").write_text("a b\nb a c\n")
    (tmp_path / "ref").mkdir()
    rng = np.random.default_rng(0)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "ref" / f"r{i}.png")
    r = run_cli("evaluate", "pipeline", "--model", tmp_path / "sd", "--prompts", tmp_path / "prompts.txt",
                "--schedules", "constant", "--scales", "2", "--n", "3", "--steps", "2", "--clip", tmp_path / "clip",
                "--reference", tmp_path / "ref", "--out", tmp_path / "run", "--no-progress")
    assert r.returncode == 0, r.stderr
    from transformers import CLIPModel

    dim = CLIPModel.from_pretrained(tmp_path / "clip").config.projection_dim
    # FID on CLIP features against the user's own reference folder: there is no real-vs-real floor to draw
    check_warning_and_floor(r.stdout, 6, dim, floor=False)


def _digits_denoiser():
    from storylab.images.assets import DENOISER

    return DENOISER


def guidance_removal(tmp_path):
    r = run_cli("evaluate", "guidance-removal", "--checkpoint", _digits_denoiser(), "--scales", "2", "--points", "1",
                "--per-class", "1", "--steps", "2", "--out", tmp_path / "gr")
    assert r.returncode == 0, r.stderr
    check_warning_and_floor(r.stdout, 10, feature_dim("digits"))


def code_slide_loops(tmp_path):
    r = run_cli("evaluate", "code-slide-loops", "--checkpoint", _digits_denoiser(), "--per-class", "1", "--steps", "2",
                "--show", "1", "--out", tmp_path / "cs")
    assert r.returncode == 0, r.stderr
    check_warning_and_floor(r.stdout, 10, feature_dim("digits"))


CASES = {"evaluate_digits_cmd": evaluate_study, "evaluate_controlnet_cmd": evaluate_controlnet,
         "evaluate_zoo_cmd": evaluate_zoo, "evaluate_pipeline": evaluate_pipeline,
         "guidance_removal": guidance_removal, "code_slide_loops_cmd": code_slide_loops}


def test_every_command_that_prints_fid_has_a_case():
    assert set(fid_commands().values()) == set(CASES)


@pytest.mark.parametrize("function", sorted(CASES))
def test_fid_is_printed_with_n_the_small_sample_warning_and_the_floor_spread(tmp_path, function):
    CASES[function](tmp_path)
