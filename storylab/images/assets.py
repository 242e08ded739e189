"""Paths of the checkpoints shipped inside the package (``storylab/assets/images``)."""

from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "images"
DENOISER = ASSETS / "digits_denoiser.safetensors"
CLASSIFIER = ASSETS / "digits_classifier.safetensors"
FEATURES = ASSETS / "digit_features.safetensors"
