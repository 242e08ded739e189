"""storylab.guidance."""
