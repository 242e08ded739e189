"""What the README promises of two commands' outputs: `sample digits` never overwrites its default
grid, and `train features` ends with the `--features` flag of the metric commands of its data set."""

import shlex

import click
import pytest

from tests.cli_runner import run_cli

GRID = ("sample", "digits", "--steps", "1", "--per-class", "1", "--classes", "1", "--no-progress")


def test_sample_digits_writes_runs_samples_png_and_never_overwrites_it_unless_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    first = run_cli(*GRID)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("wrote runs/samples.png")
    runs_png = runs / "samples.png"
    runs_png.write_bytes(b"an earlier result")  # whatever is there must survive the next default run
    for n in (2, 3):
        again = run_cli(*GRID)
        assert again.returncode == 0 and again.stdout.startswith(f"wrote runs/samples-{n}.png"), again.stdout
        assert runs_png.read_bytes() == b"an earlier result"
    named = run_cli(*GRID, "--out", "runs/samples.png")
    assert named.returncode == 0, named.stderr
    assert runs_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # named with --out: overwritten
    assert sorted(p.name for p in runs.iterdir()) == ["samples-2.png", "samples-3.png", "samples.png"]


def _parses(words):
    """The hinted command line parses (its command and options exist) without running it."""
    from storylab.cli import command

    cmd, args = command(), list(words)
    while args and hasattr(cmd, "commands") and args[0] in cmd.commands:
        cmd = cmd.commands[args.pop(0)]
    assert not hasattr(cmd, "commands"), f"no command {words}"
    try:
        cmd.make_context(cmd.name, args, resilient_parsing=False)
    except click.UsageError as exc:
        raise AssertionError(f"the hint does not parse: {shlex.join(words)}: {exc}") from None


@pytest.mark.parametrize("kind", ["digits", "idx folder"])
def test_train_features_ends_with_the_features_flag_of_its_metric_commands(tmp_path, monkeypatch, kind):
    # a named data set other than digits (fashion-mnist: 60,000 images to score) takes the named branch
    # of the same line; an IDX folder is scored by the digits study of its model and `evaluate zoo --data`
    from tests.images.data.test_idx_datasets import write_idx_folder

    monkeypatch.chdir(tmp_path)
    data = "digits" if kind == "digits" else str(write_idx_folder(tmp_path / "idx", n_train=40, n_test=20, classes=4))
    r = run_cli("train", "features", "--data", data, "--steps", "2", "--batch-size", "8", "--no-progress",
                "--no-resume")
    assert r.returncode == 0, r.stderr
    out = "runs/digit_features.safetensors" if kind == "digits" else "runs/idx_features.safetensors"
    assert (tmp_path / out).is_file()
    last = r.stdout.strip().splitlines()[-1]
    zoo = "" if kind == "digits" else f" --data {data}"
    assert last == (f"use it with: storylab evaluate digits --features {out}  (or storylab evaluate zoo{zoo} "
                    f"--features {out}; without --features the metric commands use the shipped network)")
    _parses(["evaluate", "digits", "--features", out])
    _parses(["evaluate", "zoo", *zoo.split(), "--features", out])


@pytest.mark.parametrize("verb", ["sample", "evaluate"])
def test_a_missing_shipped_denoiser_says_how_to_train_it(tmp_path, verb):
    extra = ["--out", str(tmp_path / "x.png")] if verb == "sample" else ["--out", str(tmp_path / "study")]
    r = run_cli(verb, "mnist", *extra)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert r.stderr.startswith("error: no mnist denoiser is shipped (")
    assert r.stderr.strip().endswith("train one with `storylab train mnist` and pass --checkpoint "
                                     "runs/mnist_denoiser.safetensors")
    assert list(tmp_path.iterdir()) == []
