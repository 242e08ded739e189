"""The images wing's sampling defaults, in one torch-free place (the CLI reads them for --help without torch).

DDPM ancestral sampling (Ho et al. 2020, Algorithm 2), respaced, is the default sampler of `sample`, `evaluate`,
the zoo, ControlNet, the demo and the app; `--sampler` chooses another. It was chosen on the same noise against
DDIM and EDM Heun (docs/fashion_mnist_study.md): it ties with DDIM on the v-prediction model and beats it by far
on eps models, where the deterministic samplers speckle. `sample` draws 50 steps; the studies, whose cells cost
n x steps, draw 20 (their `--steps`).
"""

DEFAULT_SAMPLER = "ddpm"
DEFAULT_SAMPLE_STEPS = 50
STUDY_STEPS = 20
