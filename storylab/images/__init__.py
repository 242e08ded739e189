"""Images wing: data sets (digits, Fashion-MNIST, MNIST), the class-conditional denoiser, ControlNet, the schedule study, the generative model zoo.

Folders: ``data/`` (data sets and the metrics' reference file), ``networks/`` (UNet denoiser, noise-aware classifier,
feature network), ``control/`` (ControlNet and its condition extractors), ``study/`` (guided sampling helpers, the
schedule study, the memorisation check, figures and grids), ``zoo/`` (AE, VAE, CVAE, VQ-VAE, GAN, latent diffusion),
``commands/`` (the CLI commands and the interactive panels the front door calls).
"""
