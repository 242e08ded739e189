"""Plot guidance-weight schedules w(t) over the sampling steps (first = noisiest), as in Wang et al. 2024, Fig. 2."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from storylab.guidance.schedules import parse_schedule, sampling_progress
from storylab.io import atomic_savefig


def plot_weights(specs: Sequence[str], scale: float, steps: int, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG with one curve per schedule SPEC: per-step scale against sampling progress."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for spec in specs:
        schedule = parse_schedule(spec)
        values = schedule.scales(steps, scale).numpy()
        progress = sampling_progress(steps, schedule.grid).numpy()
        ax.plot(progress, values, label=f"{spec} (mean {values.mean():.2f})", linewidth=1.4, marker=".", markersize=4)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("sampling progress (0 = pure noise, 1 = data)")
    ax.set_ylabel("guidance scale s_i = 1 + w_i")
    ax.set_title(title or f"guidance-weight schedules, mean scale {scale:g}, {steps} steps")
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return Path(path)
