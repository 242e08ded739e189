"""Images wing: digits data, the class-conditional digit denoiser, ControlNet, the generative model zoo."""
