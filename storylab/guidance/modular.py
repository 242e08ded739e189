"""Every guidance rule on a diffusers SDXL pipeline, through diffusers' modular blocks.

Classic pipelines combine the two CFG branches themselves, so only CFG (with storylab's schedules,
:class:`~storylab.guidance.diffusers_callback.ScheduledGuidance`) runs there. Other rules need a
guider: :func:`modular_pipeline` puts a loaded classic SDXL pipeline's components into
``StableDiffusionXLAutoBlocks``, and :func:`pipeline_guider` builds the rule's guider under a
schedule (storylab's two-branch rules as :class:`ScheduledGuider`, PAG / SEG / SLG / AutoGuidance as
diffusers' own guiders with hooks, under :func:`schedule_guider`).
"""

from __future__ import annotations

from typing import Any

import torch

from storylab.errors import StorylabError


# Rules other than CFG run through diffusers' modular SDXL blocks with the classic pipeline's components:
# storylab's two-branch rules as ScheduledGuider, the perturbation rules and AutoGuidance as diffusers' own
# guiders (hooks on the UNet's first mid-block transformer) under schedule_guider. PERTURBATION_SCALE is
# their perturbation strength (diffusers' SDXL PAG pipeline default pag_scale = 3); --scales is the CFG scale.
PIPELINE_RULES = ("cfg", "cfg-zero*", "tcfg", "fdg", "apg-mix", "pag", "seg", "slg", "autoguidance")
PERTURBATION_SCALE = 3.0
MID_BLOCK = "mid_block.attentions.0.transformer_blocks"
_MODULAR_COMPONENTS = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "unet", "scheduler")


def pipeline_guider(rule: str, spec: str, scale: float) -> Any:
    """The diffusers guider of ``rule`` at CFG scale ``scale`` under schedule ``spec`` for a modular SDXL pipeline."""
    from diffusers import guiders as dg
    from diffusers.hooks import LayerSkipConfig
    from diffusers.hooks.smoothed_energy_guidance_utils import SmoothedEnergyGuidanceConfig

    from storylab.guidance.diffusers_guider import MODULAR_RULES, ScheduledGuider, schedule_guider

    if rule in MODULAR_RULES:
        return ScheduledGuider(rule, spec, guidance_scale=scale)
    if rule == "pag":
        made = dg.PerturbedAttentionGuidance(
            guidance_scale=scale, perturbed_guidance_scale=PERTURBATION_SCALE, perturbed_guidance_start=0.0,
            perturbed_guidance_stop=1.0, perturbed_guidance_config=LayerSkipConfig(
                indices=[0], fqn=MID_BLOCK, skip_attention=False, skip_attention_scores=True, skip_ff=False))
    elif rule == "slg":
        made = dg.SkipLayerGuidance(guidance_scale=scale, skip_layer_guidance_scale=PERTURBATION_SCALE,
                                    skip_layer_guidance_start=0.0, skip_layer_guidance_stop=1.0,
                                    skip_layer_config=LayerSkipConfig(indices=[0], fqn=MID_BLOCK, skip_ff=False))
    elif rule == "seg":
        made = dg.SmoothedEnergyGuidance(guidance_scale=scale, seg_guidance_scale=PERTURBATION_SCALE,
                                         seg_guidance_config=SmoothedEnergyGuidanceConfig(indices=[0], fqn=MID_BLOCK))
    elif rule == "autoguidance":
        made = dg.AutoGuidance(guidance_scale=scale, auto_guidance_config=LayerSkipConfig(indices=[0], fqn=MID_BLOCK,
                                                                                         dropout=1.0))
    else:
        raise StorylabError(f"guidance '{rule}' does not run on a diffusers pipeline (choose from {', '.join(PIPELINE_RULES)})")
    return schedule_guider(made, spec)


def modular_pipeline(pipe: Any) -> Any:
    """diffusers' modular SDXL blocks over the components of a loaded classic SDXL pipeline."""
    from diffusers.modular_pipelines import StableDiffusionXLAutoBlocks

    if type(pipe).__name__ != "StableDiffusionXLPipeline":
        raise StorylabError(f"rules other than cfg need diffusers' modular blocks, which exist for SDXL here, "
                            f"not for {type(pipe).__name__}: use --rules cfg on this pipeline")
    modular = StableDiffusionXLAutoBlocks().init_pipeline()
    modular.update_components(**{k: getattr(pipe, k) for k in _MODULAR_COMPONENTS})
    modular.set_progress_bar_config(disable=True)
    return modular


def modular_images(modular: Any, guider: Any, prompt: str, negative: str, steps: int, n: int,
                    generators: list[torch.Generator], rows: list[int]) -> list[Any]:
    """``n`` images of ``prompt`` from the modular pipeline with ``guider``; appends each UNet call's batch to ``rows``."""
    original = modular.unet.forward

    def counted(sample, *args, **kwargs):
        rows.append(int(sample.shape[0]))
        return original(sample, *args, **kwargs)

    modular.update_components(guider=guider)
    modular.unet.forward = counted
    try:
        return modular(prompt=prompt, negative_prompt=negative, num_inference_steps=steps, num_images_per_prompt=n,
                       generator=generators, output="images")
    finally:
        modular.unet.forward = original
