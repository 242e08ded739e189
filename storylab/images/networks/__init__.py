"""Networks of the images wing and how they are trained: the UNet denoiser, the noise-aware classifier, the feature network."""
