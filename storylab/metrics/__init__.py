"""storylab.metrics."""
