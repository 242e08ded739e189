"""Paths of the checkpoints shipped inside the package (``storylab/assets/images``), and where training writes.

Reading options (``--checkpoint``, ``--base``, ``--vae``, ``--classifier``) default to the shipped files;
training commands default to ``runs/`` in the current directory (:func:`run_path`), so a default run never
overwrites a shipped checkpoint inside an installed package. Regenerating a shipped file is explicit:
``--out storylab/assets/images/<file>``.
"""

from __future__ import annotations

import shlex
from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "images"
DENOISER = ASSETS / "digits_denoiser.safetensors"
CLASSIFIER = ASSETS / "digits_classifier.safetensors"
FEATURES = ASSETS / "digit_features.safetensors"

RUNS = Path("runs")  # relative: resolved against the current directory when a command runs


def run_path(name: str) -> Path:
    """Default output of a training command: ``runs/<name>`` under the current directory (created on save)."""
    return RUNS / name


def use_hint(*command: str | Path) -> str:
    """The line a training command prints last: how to use what it wrote (paths shell-quoted)."""
    return "use it with: " + " ".join(shlex.quote(str(part)) for part in command)
