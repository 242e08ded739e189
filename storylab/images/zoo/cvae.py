"""The conditional VAE (Sohn et al. 2015; the lecture's L_CVAE): both networks see the class c.

    L_CVAE = -E_{z ~ q_phi(z | x, c)} log p_theta(x | z, c) + beta * KL(q_phi(z | x, c) || p(z))

The encoder gets c as ten one-hot image channels next to the digit, the decoder gets the one-hot c
beside z; the prior stays N(0, I). Sampling draws z ~ N(0, I) and decodes it with the requested
class, so the CVAE is the zoo's first model with *control* (adherence in the table). Because c
already tells the decoder which digit to draw, z only has to carry style (slant, thickness):
interpolating z at a fixed c changes the style, interpolating c morphs one digit into another.
Everything else (likelihood, KL, reparameterisation) is :class:`storylab.images.zoo.vae.VAE`, of
which this is the ``num_classes > 0`` case rather than a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from storylab.errors import StorylabError
from storylab.images.data.digits import NUM_CLASSES
from storylab.images.zoo.vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    """VAE settings with the class count (at least 2)."""

    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_classes < 2:
            raise StorylabError(f"a conditional VAE needs at least 2 classes, got {self.num_classes}")


class CVAE(VAE):
    """q(z | x, c) and p(x | z, c); ``sample(labels)`` draws digits of the requested classes."""

    family = "cvae"
    config_cls = CVAEConfig

    def __init__(self, config: VAEConfig | None = None) -> None:
        if config is not None and not isinstance(config, CVAEConfig):
            config = CVAEConfig(**{k: getattr(config, k) for k in VAEConfig.__dataclass_fields__})
        super().__init__(config or CVAEConfig())
