"""Which module holds each model-zoo family: a name -> (module, class) table that imports nothing back.

:func:`storylab.images.zoo.common.load_zoo_model` and the trainers look families up here, and the
module of a family is imported only when that family is asked for. The family modules import
:mod:`storylab.images.zoo.common` (the shared contract); ``common`` imports only this leaf, so there
is no circle. A new family adds one row (its class sets ``family`` to the same name).
"""

from __future__ import annotations

import importlib
from typing import Any

FAMILY_MODULES: dict[str, tuple[str, str]] = {
    "ae": ("storylab.images.zoo.autoencoder", "AutoEncoder"),
    "vae": ("storylab.images.zoo.vae", "VAE"),
    "cvae": ("storylab.images.zoo.cvae", "CVAE"),
    "vqvae": ("storylab.images.zoo.vqvae", "VQVAE"),
    "gan": ("storylab.images.zoo.gan", "GAN"),
    "ldm": ("storylab.images.zoo.latent_diffusion", "LatentDiffusion"),
}


def family_class(family: str) -> Any:
    """The model class of ``family`` (imports its module on first use); KeyError for an unknown name."""
    module, name = FAMILY_MODULES[family]
    return getattr(importlib.import_module(module), name)


def family_classes() -> dict[str, Any]:
    """The family name -> model class registry, in the zoo's order."""
    return {family: family_class(family) for family in FAMILY_MODULES}
