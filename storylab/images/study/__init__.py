"""Guidance-facing sampling and the lectures' experiments: rules and scale sweeps, the schedule study, the memorisation check, figures and grids."""
