"""Guided sampling helpers of the images wing: the guidance rule named on a command line, and guidance-scale sweeps.

:func:`build_rule` turns a rule name into a :class:`~storylab.guidance.GuidanceRule` (loading the
noise-aware classifier for classifier guidance, Dhariwal & Nichol 2021). :func:`scale_sweep` draws
the lectures' figure of guided diffusion: the guidance scale grows across columns while each row
keeps its noise, so one sees which samples guidance changes drastically and which hardly at all.
Both take any class-conditional image model through a ``sample(scale)`` callable: they know nothing
of the data set.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from storylab.errors import StorylabError


def build_rule(guidance: str, labels: torch.Tensor, classifier_path: str | Path, num_classes: int, rescale: float = 0.0,
               apg_eta: float = 0.0, apg_norm: float = 0.0, apg_momentum: float = 0.0, data: str | None = None,
               image_size: int | None = None, options: dict | None = None, negative_scale: float = 1.0):
    """Make the guidance rule named on the command line (loading the classifier for classifier guidance).

    ``data`` and ``image_size`` are the denoiser's: a classifier of another data set or size is one clear error.
    The option flags (0 = not given; ``negative_scale`` 1 = not given) and ``options`` (``--rule-option KEY=VALUE``, parsed) go only to a rule
    that takes them: a flag the rule does not use is one clear line, never silently ignored.
    """
    from storylab.guidance import make_rule
    from storylab.guidance.registry import canonical_rule, rule_options

    name = canonical_rule(guidance)
    chosen = dict(options or {})
    flags = {"--rescale": ("rescale", rescale), "--apg-eta": ("eta", apg_eta), "--apg-norm": ("norm_threshold", apg_norm),
             "--apg-momentum": ("momentum", apg_momentum)}
    takes = rule_options(name)
    if not math.isclose(negative_scale, 1.0):  # --negative-scale: 1 (its default) = not given
        flags["--negative-scale"] = ("negative_scale", negative_scale)
    for flag, (key, value) in flags.items():
        if flag != "--negative-scale" and math.isclose(value, 0.0, abs_tol=1e-12):
            continue
        if key not in takes:
            raise StorylabError(f"{flag} is not used by guidance '{name}'")
        if key in chosen:
            raise StorylabError(f"{flag} and --rule-option {key} give the same option twice")
        chosen[key] = value
    if name == "classifier":
        from storylab.images.networks.noisy_classifier import load_classifier

        clf = load_classifier(Path(classifier_path), num_classes=num_classes, data=data, image_size=image_size)
        return make_rule("classifier", classifier=clf, labels=labels, **chosen)
    return make_rule(name, **chosen)


def parse_sweep(text: str) -> list[float]:
    """``START:STOP:COUNT`` -> COUNT evenly spaced guidance scales from START to STOP, both included.

    ``0:5.5:12`` gives 0, 0.5, ..., 5.5 (``numpy.linspace``); bad input is one clear line.
    """
    usage = f"--sweep-scale must look like START:STOP:COUNT (e.g. 0:5.5:12), got '{text}'"
    parts = text.split(":")
    if len(parts) != 3:
        raise StorylabError(usage)
    try:
        start, stop = float(parts[0]), float(parts[1])
        count = int(parts[2])
    except ValueError:
        raise StorylabError(usage) from None
    if not (math.isfinite(start) and math.isfinite(stop)) or min(start, stop) < 0:
        raise StorylabError(f"--sweep-scale: START and STOP must be finite scales >= 0, got '{text}'")
    if not 2 <= count <= 64:
        raise StorylabError(f"--sweep-scale: COUNT must be between 2 and 64 columns, got {count}")
    if stop <= start:
        raise StorylabError(f"--sweep-scale: STOP must be greater than START, got '{text}'")
    return [float(s) for s in np.linspace(start, stop, count)]


def scale_sweep(sample: Callable[[float], torch.Tensor], scales: Sequence[float],
                on_column: Callable[[int], None] | None = None) -> torch.Tensor:
    """Images ``(R, C, ch, H, W)``: column ``j`` is ``sample(scales[j])`` ``(R, ch, H, W)``.

    ``sample`` must draw the same noise on every call (a fixed seed), so row ``r`` is one noise
    seen under every scale; ``on_column(j)`` is called after each column (a progress bar).
    """
    columns = []
    for j, s in enumerate(scales):
        columns.append(sample(float(s)))
        if on_column is not None:
            on_column(j)
    return torch.stack(columns, dim=1)


def column_change(sweep: torch.Tensor) -> list[float]:
    """Mean absolute pixel change of each column from the previous one (0 for the first): where guidance acts."""
    diffs = [0.0]
    for j in range(1, sweep.shape[1]):
        diffs.append(float((sweep[:, j] - sweep[:, j - 1]).abs().mean()))
    return diffs
