"""Paths of the checkpoints shipped inside the package (``storylab/assets/images``), and where training writes.

Reading options (``--checkpoint``, ``--base``, ``--vae``, ``--classifier``) default to the shipped files;
training commands default to ``runs/`` in the current directory (:func:`storylab.io.run_path`), so a default run never
overwrites a shipped checkpoint inside an installed package. Regenerating a shipped file is explicit:
``--out storylab/assets/images/<file>``.
"""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "images"
DENOISER = ASSETS / "digits_denoiser.safetensors"
CLASSIFIER = ASSETS / "digits_classifier.safetensors"
FEATURES = ASSETS / "digit_features.safetensors"
