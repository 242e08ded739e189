"""Text-to-camera-trajectory sampling with DIRECTOR: EDM Heun (10 steps, rho 40) with CFG.

The sampler and the guidance are the foundation's: the denoiser handed to :class:`storylab.guidance.Guided`
is D(x; sigma) = edm_denoise(F, x, sigma, cond, 0.5) (an x_0 prediction), the null condition has every
modality zeroed, and the guidance weight schedule is any SPEC of :func:`storylab.guidance.parse_schedule`
(the same schedule objects as for images). DIRECTOR's default: w = 1.4 constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from storylab.camera.director import Director, null_condition
from storylab.diffusion import edm_denoise, edm_heun_sample
from storylab.guidance import Guided, make_rule


@dataclass
class SamplingConfig:
    """DIRECTOR's deterministic EDM Heun sampler and CFG settings."""

    steps: int = 10
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 40.0
    guidance_scale: float = 1.4
    schedule: str = "constant"
    sigma_data: float = 0.5


def guided_director(net: Director, cond: dict[str, torch.Tensor], cfg: SamplingConfig) -> Guided:
    """The sampler-ready guided model: CFG between ``cond`` and the all-zero null condition."""
    def denoiser(x: torch.Tensor, sigma: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
        return edm_denoise(net, x, sigma, c, cfg.sigma_data)

    return Guided(denoiser, cond, rule=make_rule("cfg"), scale=cfg.guidance_scale, schedule=cfg.schedule,
                  uncond=null_condition(cond), prediction="x0")


@torch.no_grad()
def sample_trajectories(net: Director, cond: dict[str, torch.Tensor], n_frames: int, cfg: SamplingConfig,
                        seed: int = 0) -> torch.Tensor:
    """Draw (B, n_frames, 9) standardised camera features for the conditions in ``cond`` (one per batch row);
    the sampler runs on ``net.cfg.data_scale`` x the features.

    A two-stage model first plans the per-frame tags from the caption and character (never from reference
    tags), samples its camera-frame motion given the plan, gates the still axes and returns the same
    (world, DIRECTOR) features as a one-stage model, so every metric reads both alike.
    """
    net.eval()
    batch = cond["char"].shape[0]
    if net.cfg.two_stage:
        cond = {**cond, "plan": net.planner.plan(cond)}
    noise = torch.randn(batch, n_frames, 9, generator=torch.Generator().manual_seed(seed))
    x = edm_heun_sample(guided_director(net, cond, cfg), noise, cfg.steps, cfg.sigma_min, cfg.sigma_max, cfg.rho)
    x = x / net.cfg.data_scale  # back to the standardised features
    if net.cfg.representation == "ego":
        from storylab.camera.motion import apply_motion_gate, ego_to_world

        if net.cfg.two_stage:
            x = apply_motion_gate(x, cond["plan"], net.cfg.motion_gate)
        x = ego_to_world(x, cond.get("mask"), net.cfg.ego_rot_scale, net.cfg.ego_trans_scale)
    return x


@torch.no_grad()
def generate_split(net: Director, data, cfg: SamplingConfig, seed: int = 0, batch_size: int = 64,
                   indices: list[int] | None = None, progress: bool = False) -> list:
    """Generate one trajectory per sample of a :class:`~storylab.camera.data.DirectorData` (its caption,
    character and length); returns a list of (n_i, 9) float64 arrays."""
    from storylab.camera.data import make_condition
    from storylab.camera.tag_metrics import split_valid
    from storylab.training.progress import progress_bar

    indices = list(range(len(data))) if indices is None else indices
    out = []
    with progress_bar("generating", total=len(indices), enabled=progress) as bar:
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            cond, mask = make_condition(data.mask[idx], data.char[idx], data.text[idx], data.text_tokens[idx],
                                        data.text_mask[idx])
            feats = sample_trajectories(net, cond, mask.shape[1], cfg, seed=seed + start)
            out += split_valid(feats, mask)
            bar.advance(len(idx))
    return out
