"""ControlNet for the image denoiser: condition extractors, the ControlNet itself, its training and measurement."""
