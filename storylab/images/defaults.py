"""The images wing's sampling defaults, in one torch-free place (the CLI reads them for --help without torch).

The default sampler of `sample`, `evaluate`, the zoo, ControlNet, the demo and the app is ``auto``: EDM's Heun
sampler (Karras et al. 2022, Algorithm 1) for a model trained to predict v or x_0, whose x_0 estimate stays
bounded at the noisiest steps, and DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2), respaced, for an eps
model, on which the deterministic samplers speckle and Heun diverges. Both were chosen on the same noise against
DDIM (docs/fashion_mnist_study.md). `--sampler` names one explicitly. Default steps: 10 Heun steps (19 network
evaluations; more steps scored worse on the shipped Fashion-MNIST model), and for DDPM/DDIM 50 in `sample` and 20
in the studies, whose cells cost n x steps (:func:`default_steps`).
"""

DEFAULT_SAMPLER = "auto"
IMAGE_SAMPLERS = ("auto", "ddpm", "ddim", "edm-heun")
SAMPLER_HELP = "Sampler: auto (edm-heun for v/x0-prediction models, ddpm for eps models), ddpm, ddim or edm-heun."
DEFAULT_SAMPLE_STEPS = 50
STUDY_STEPS = 20
HEUN_STEPS = 10
STEPS_HELP = "Sampling steps; default 10 for edm-heun, else {other}."


def resolve_sampler(sampler: str, prediction: str) -> str:
    """The sampler ``auto`` stands for, given the model's prediction type (eps, x0 or v); others unchanged."""
    if sampler != "auto":
        return sampler
    return "ddpm" if prediction == "eps" else "edm-heun"


def default_steps(sampler: str, prediction: str, study: bool = False) -> int:
    """Default sampling steps of a (resolved) sampler: :data:`HEUN_STEPS` for EDM Heun, else 50 (20 in a study)."""
    if resolve_sampler(sampler, prediction) == "edm-heun":
        return HEUN_STEPS
    return STUDY_STEPS if study else DEFAULT_SAMPLE_STEPS
