"""The images wing's sampling defaults, in one torch-free place (the CLI reads them for --help without torch).

The default sampler of `sample`, `evaluate`, the zoo, ControlNet, the demo and the app is ``auto``: EDM's Heun
sampler (Karras et al. 2022, Algorithm 1) for a model trained to predict v or x_0, whose x_0 estimate stays
bounded at the noisiest steps, and DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2), respaced, for an eps
model, on which the deterministic samplers speckle and Heun diverges. Both were chosen on the same noise against
DDIM (docs/fashion_mnist_study.md). `--sampler` names one explicitly. `sample` draws 50 steps; the studies, whose
cells cost n x steps, draw 20 (their `--steps`).
"""

DEFAULT_SAMPLER = "auto"
IMAGE_SAMPLERS = ("auto", "ddpm", "ddim", "edm-heun")
SAMPLER_HELP = "Sampler: auto (edm-heun for v/x0-prediction models, ddpm for eps models), ddpm, ddim or edm-heun."
DEFAULT_SAMPLE_STEPS = 50
STUDY_STEPS = 20


def resolve_sampler(sampler: str, prediction: str) -> str:
    """The sampler ``auto`` stands for, given the model's prediction type (eps, x0 or v); others unchanged."""
    if sampler != "auto":
        return sampler
    return "ddpm" if prediction == "eps" else "edm-heun"
