"""Camera wing: E.T. trajectory format, motion tagging, captions, synthetic data, DIRECTOR text-to-camera
diffusion and CLaTr-style evaluation (Courant et al., ECCV 2024). See docs/camera.md."""
