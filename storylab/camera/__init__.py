"""storylab.camera."""
