"""Shared fixtures of the humor wing's tests: tiny media made on the spot."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny tensors: extra threads only spin on a shared 2-core machine

SR = 16_000


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run ``storylab`` in a subprocess, as a user would."""
    import os
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "storylab.cli", *args], capture_output=True, text=True, env=env)


def laugh_like(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A burst of amplitude-modulated noise (a stand-in laugh for detector unit tests)."""
    t = np.arange(int(seconds * SR)) / SR
    return (rng.standard_normal(len(t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 5 * t)) * 0.2).astype(np.float32)


@pytest.fixture(scope="session")
def stereo_scene():
    """12 s of stereo audio: dialogue-like noise equal in both channels, two laughs panned left, truth intervals."""
    rng = np.random.default_rng(0)
    n = 12 * SR
    speech = (rng.standard_normal(n) * 0.1).astype(np.float32)
    left, right = speech.copy(), speech.copy()
    truth = [(2.0, 4.0), (7.0, 9.5)]
    for s, e in truth:
        laugh = laugh_like(e - s, rng)
        left[int(s * SR):int(s * SR) + len(laugh)] += 0.8 * laugh
        right[int(s * SR):int(s * SR) + len(laugh)] += 0.2 * laugh
    return np.stack([left, right]), truth


@pytest.fixture(scope="session")
def tiny_sitcom(tmp_path_factory):
    """One short synthetic episode (about 30 s, small frames)."""
    from storylab.humor.synth import SynthConfig, synth_sitcom

    out = tmp_path_factory.mktemp("sitcom")
    episodes = synth_sitcom(out, SynthConfig(episodes=2, duration=24.0, scenes=1, fps=5, width=64, height=48, seed=3),
                            progress=False)
    return out, episodes


class CliResult:
    """What a command run in-process left: exit code, stdout, stderr."""

    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli_inprocess(*args: str) -> CliResult:
    """Run a ``storylab`` command in this process, mapping errors exactly as ``storylab.cli.main`` does."""
    from typer.testing import CliRunner

    from storylab.cli import app
    from storylab.errors import StorylabError

    result = CliRunner().invoke(app, list(args))
    stderr = result.stderr
    code = result.exit_code
    if isinstance(result.exception, StorylabError):
        stderr += f"error: {result.exception}\n"
        code = result.exception.exit_code
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(code, result.stdout, stderr)


@pytest.fixture
def cli():
    """Run a command in-process (fast); ``cli_subprocess`` runs the real console entry point."""
    return run_cli_inprocess


@pytest.fixture
def cli_subprocess():
    """Run ``python -m storylab.cli`` in a subprocess, as a user would."""
    return run_cli
