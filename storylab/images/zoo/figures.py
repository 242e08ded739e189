"""Sample, reconstruction and interpolation grids of any zoo model (``storylab sample <family>``)."""

from __future__ import annotations

from pathlib import Path

import torch

from storylab.images.data.digits import NUM_CLASSES, load_digits_split
from storylab.images.study.grid import save_grid
from storylab.images.zoo.common import ZooModel


def class_labels(per_class: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """``(num_classes * per_class,)`` labels 0,0,..,1,1,..: one grid row per class."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def test_examples(per_class: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` test digits of every class (the ``offset``-th onwards), ordered by class."""
    test = load_digits_split("test")
    idx = torch.cat([(test.labels == c).nonzero().flatten()[offset:offset + per_class] for c in range(NUM_CLASSES)])
    return test.images[idx], test.labels[idx]


@torch.no_grad()
def reconstruction_rows(model: ZooModel, sets: int = 3) -> torch.Tensor | None:
    """Rows of ten real test digits (one per class) each followed by their reconstructions; ``None`` without an encoder."""
    rows = []
    for s in range(sets):
        images, labels = test_examples(1, offset=s)
        rec = model.reconstruct(images, labels)
        if rec is None:
            return None
        rows += [images, rec]
    return torch.cat(rows)


def interpolation_rows(model: ZooModel, pairs: int = 5, steps: int = 10) -> torch.Tensor:
    """Per pair of real test digits (class i -> class i + 5): real a, ``steps`` decoded latents a..b, real b."""
    images, labels = test_examples(1, offset=3)
    rows = []
    for i in range(pairs):
        a, b = i % NUM_CLASSES, (i + 5) % NUM_CLASSES
        path = model.interpolate(images[a:a + 1], images[b:b + 1], labels[a:a + 1], labels[b:b + 1], steps)
        rows += [images[a:a + 1], path, images[b:b + 1]]
    return torch.cat(rows)


def write_sample_figures(model: ZooModel, out_dir: str | Path, per_class: int = 10, pairs: int = 5, steps: int = 10,
                         seed: int = 0) -> dict[str, Path]:
    """Write samples.png, reconstructions.png (if the model has an encoder) and interpolation.png into ``out_dir``."""
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    model.eval()
    samples = model.sample(class_labels(per_class, model.num_classes or NUM_CLASSES), torch.Generator().manual_seed(seed))
    written["samples"] = save_grid(samples, out_dir / "samples.png", nrow=per_class)
    rec = reconstruction_rows(model)
    if rec is not None:
        written["reconstructions"] = save_grid(rec, out_dir / "reconstructions.png", nrow=NUM_CLASSES)
    written["interpolation"] = save_grid(interpolation_rows(model, pairs, steps), out_dir / "interpolation.png",
                                         nrow=steps + 2)
    return written
