"""storylab.humor."""
