"""The lectures' generative model zoo on the digits: AE, VAE, CVAE, VQ-VAE, GAN and latent diffusion.

One file per family, one contract (:class:`~storylab.images.zoo.common.ZooModel`), one evaluation
(:mod:`storylab.images.zoo.evaluate`) that puts every family beside the pixel diffusion model on the
same test split, feature network and metrics. See ``docs/zoo.md``.
"""

from storylab.images.zoo.common import ZooModel, checkpoint_family, load_zoo_model, reconstruction_error, save_zoo_model
from storylab.images.zoo.registry import FAMILY_MODULES, family_classes

FAMILIES = tuple(FAMILY_MODULES)

__all__ = ["FAMILIES", "ZooModel", "checkpoint_family", "family_classes", "load_zoo_model", "reconstruction_error",
           "save_zoo_model"]
