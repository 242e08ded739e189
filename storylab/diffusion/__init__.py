"""storylab.diffusion."""
