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

_DIGITS = {"denoiser": DENOISER, "classifier": CLASSIFIER, "features": FEATURES}


def shipped(data: str, role: str) -> Path:
    """The shipped file of ``role`` (denoiser, classifier, features, reference, controlnet_canny) for data set ``data``.

    The digits keep their historical names; every other data set is ``<data>_<role>.safetensors``
    (``fashion_mnist_denoiser.safetensors``). The path may not exist (nothing is shipped for ``mnist``).
    """
    if data == "digits" and role in _DIGITS:
        return _DIGITS[role]
    if data == "digits" and role.startswith("controlnet_"):
        return ASSETS / f"{role}.safetensors"
    return ASSETS / f"{data.replace('-', '_').replace(':', '_').replace('/', '_')}_{role}.safetensors"


def zoo_checkpoint(family: str, data: str = "digits") -> Path:
    """The shipped model-zoo checkpoint of ``family``: ``zoo_<family>.safetensors`` for the digits, else
    ``<data>_zoo_<family>.safetensors`` (``fashion_mnist_zoo_vae.safetensors``); the path may not exist."""
    return ASSETS / f"zoo_{family}.safetensors" if data == "digits" else shipped(data, f"zoo_{family}")
