"""The images wing's sampling defaults, in one torch-free place (the CLI reads them for --help without torch).

DDPM ancestral sampling (Ho et al. 2020, Algorithm 2) respaced to 20 steps is the default of `sample`, `evaluate`,
the zoo, ControlNet, the demo and the app; `--sampler` chooses another. It was chosen on the same noise against
DDIM and EDM Heun (docs/fashion_mnist_study.md): the deterministic samplers speckle on an imperfect eps model.
"""

DEFAULT_SAMPLER = "ddpm"
DEFAULT_SAMPLE_STEPS = 20
