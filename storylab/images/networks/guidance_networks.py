"""The second networks some guidance rules need, built for the images wing's denoisers.

* ``weak`` (AutoGuidance, Karras et al. 2024): a weaker denoiser of the same data, noise schedule
  and classes (an earlier checkpoint or a smaller width), from ``--guide-checkpoint``.
* ``perturbed`` (PAG / SEG / skip-layer guidance): the same UNet with its self-attention perturbed
  (:func:`storylab.images.networks.unet.perturbed_attention`).
* ``uncond`` (optional, for CFG-like rules): a separate unconditional network, Karras et al.'s
  cond-XL + uncond-XS setup, from ``--uncond-checkpoint``.
"""

from __future__ import annotations

from typing import Any

import torch

from storylab.errors import StorylabError
from storylab.guidance.guided import BranchNetwork
from storylab.guidance.rules import GuidanceRule
from storylab.images.networks.unet import perturbed_attention


def perturbed_denoiser(model: Any, perturbation: str, blur_sigma: float, base: Any = None) -> Any:
    """``base`` (default ``model.denoiser``; a ControlNet wrapper around it works too) with every
    self-attention layer of ``model.unet`` perturbed during the call."""
    base = base or model.denoiser

    def denoiser(x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        with perturbed_attention(model.unet, perturbation, blur_sigma):
            return base(x, t, cond)

    return denoiser


def _check_compatible(model: Any, other: Any, option: str) -> None:
    mine, theirs = model.config, other.config
    if mine.data != theirs.data or mine.image_size != theirs.image_size:
        raise StorylabError(f"{option} was trained on {theirs.data} at {theirs.image_size} px, the denoiser on "
                            f"{mine.data} at {mine.image_size} px")
    if model.num_classes != other.num_classes:
        raise StorylabError(f"{option} has {other.num_classes} classes, the denoiser {model.num_classes}")
    if model.alpha_bar.shape != other.alpha_bar.shape or not torch.allclose(model.alpha_bar, other.alpha_bar):
        raise StorylabError(f"{option} uses another noise schedule ({theirs.beta_schedule}, {theirs.num_timesteps} "
                            f"steps) than the denoiser ({mine.beta_schedule}, {mine.num_timesteps} steps)")


def _uses_uncond(rule: GuidanceRule) -> bool:
    strength = rule.strength(2.0)
    return "uncond" in rule.branches(strength)


def guidance_networks(model: Any, rule: GuidanceRule, guide: Any = None, uncond_model: Any = None,
                      denoiser: Any = None) -> dict[str, BranchNetwork]:
    """The ``networks`` argument of :class:`~storylab.guidance.Guided` for ``rule`` on the images wing's ``model``.

    ``guide`` is AutoGuidance's weak model; ``uncond_model`` a separate unconditional network;
    ``denoiser`` the main denoiser when a wrapper (ControlNet) replaces ``model.denoiser``. A model
    the rule does not use, or a missing one, is one clear line.
    """
    needs = tuple(getattr(rule, "network_branches", ()))
    networks: dict[str, BranchNetwork] = {}
    if "weak" in needs:
        if guide is None:
            raise StorylabError(f"guidance '{rule.name}' guides with a weaker model: pass --guide-checkpoint "
                                "(an earlier checkpoint or a smaller model of the same data)")
        _check_compatible(model, guide, "--guide-checkpoint")
        networks["weak"] = BranchNetwork(guide.denoiser, guide.config.prediction)
    elif guide is not None:
        raise StorylabError(f"--guide-checkpoint is used by autoguidance only, not by guidance '{rule.name}'")
    if "perturbed" in needs:
        networks["perturbed"] = BranchNetwork(perturbed_denoiser(model, rule.perturbation, rule.blur_sigma, denoiser),
                                              model.config.prediction)
    if uncond_model is not None:
        if not _uses_uncond(rule):
            raise StorylabError(f"--uncond-checkpoint is not used by guidance '{rule.name}' (it has no unconditional branch)")
        _check_compatible(model, uncond_model, "--uncond-checkpoint")
        networks["uncond"] = BranchNetwork(uncond_model.denoiser, uncond_model.config.prediction)
    return networks
