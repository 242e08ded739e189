"""storylab.videoqa."""
