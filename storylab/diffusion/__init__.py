"""Foundation: noise schedules, the forward process, losses and samplers (DDPM, DDIM, EDM Heun)."""

from storylab.diffusion.contract import GuidedModel, Prediction, StepContext
from storylab.diffusion.edm import EDMConfig, edm_denoise, edm_loss
from storylab.diffusion.forward import PREDICTIONS, q_sample, to_eps, to_x0, training_target, vp_coefficients
from storylab.diffusion.losses import LOSS_WEIGHTINGS, diffusion_loss, min_snr_weight
from storylab.diffusion.samplers import SAMPLERS, ddim_sample, ddpm_sample, edm_heun_sample
from storylab.diffusion.schedules import BETA_SCHEDULES, alphas_cumprod, beta_schedule, karras_sigmas, sampling_timesteps

__all__ = ["BETA_SCHEDULES", "LOSS_WEIGHTINGS", "min_snr_weight", "EDMConfig", "GuidedModel", "PREDICTIONS", "Prediction", "SAMPLERS", "StepContext",
           "alphas_cumprod", "beta_schedule", "ddim_sample", "ddpm_sample", "diffusion_loss", "edm_denoise",
           "edm_heun_sample", "edm_loss", "karras_sigmas", "q_sample", "sampling_timesteps", "to_eps", "to_x0",
           "training_target", "vp_coefficients"]
