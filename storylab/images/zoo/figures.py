"""Sample, reconstruction and interpolation grids of any zoo model (``storylab sample <family>``), rows named."""

from __future__ import annotations

from pathlib import Path

import torch

from storylab.errors import StorylabError
from storylab.images.study.grid import save_grid
from storylab.images.zoo.common import DEFAULT_DATA, ZooModel, load_data_split

NUM_CLASSES = 10  # every data set of the wing has ten classes; class_names() reads the real count


def class_names(data: str = DEFAULT_DATA, num_classes: int = NUM_CLASSES) -> tuple[str, ...]:
    """Class names of data set ``data`` (``T-shirt/top``, ... for Fashion-MNIST; ``0``..``9`` for the digits)."""
    from storylab.images.data.datasets import class_names_of

    return class_names_of(data, num_classes)


def class_labels(per_class: int, num_classes: int = NUM_CLASSES) -> torch.Tensor:
    """``(num_classes * per_class,)`` labels 0,0,..,1,1,..: one grid row per class."""
    return torch.arange(num_classes).repeat_interleave(per_class)


def test_examples(per_class: int, offset: int = 0, data: str = DEFAULT_DATA) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` test images of every class of ``data`` (the ``offset``-th onwards), ordered by class."""
    test = load_data_split(data, "test")
    num = int(test.labels.max()) + 1
    idx = torch.cat([(test.labels == c).nonzero().flatten()[offset:offset + per_class] for c in range(num)])
    return test.images[idx], test.labels[idx]


@torch.no_grad()
def reconstruction_rows(model: ZooModel, sets: int = 3) -> torch.Tensor | None:
    """Rows of one real test image per class, each followed by their reconstructions; ``None`` without an encoder."""
    rows = []
    for s in range(sets):
        images, labels = test_examples(1, offset=s, data=model.data)
        rec = model.reconstruct(images, labels)
        if rec is None:
            return None
        rows += [images, rec]
    return torch.cat(rows)


def interpolation_rows(model: ZooModel, pairs: int = 5, steps: int = 10) -> tuple[torch.Tensor, list[str]]:
    """Per pair of real test images (class i -> class i + 5): real a, ``steps`` decoded latents a..b, real b.

    Returns the images and one "a -> b" label per row (class names).
    """
    images, labels = test_examples(1, offset=3, data=model.data)
    num = images.shape[0]
    names = class_names(model.data, num)
    rows, row_names = [], []
    for i in range(pairs):
        a, b = i % num, (i + num // 2) % num
        path = model.interpolate(images[a:a + 1], images[b:b + 1], labels[a:a + 1], labels[b:b + 1], steps)
        rows += [images[a:a + 1], path, images[b:b + 1]]
        row_names.append(f"{names[a]} -> {names[b]}")
    return torch.cat(rows), row_names


def write_sample_figures(model: ZooModel, out_dir: str | Path, per_class: int = 10, pairs: int = 5, steps: int = 10,
                         seed: int = 0) -> dict[str, Path]:
    """Write samples.png, reconstructions.png (if the model has an encoder) and interpolation.png into ``out_dir``.

    Conditional models draw one row per class, named in the margin; unconditional rows are unnamed draws.
    """
    out_dir = Path(out_dir)
    written: dict[str, Path] = {}
    model.eval()
    num = model.num_classes or NUM_CLASSES
    conditional = model.conditional or model.family == "ldm"
    names = class_names(model.data, num)
    samples = model.sample(class_labels(per_class, num), torch.Generator().manual_seed(seed))
    written["samples"] = save_grid(samples, out_dir / "samples.png", nrow=per_class,
                                   row_labels=list(names) if conditional else None)
    try:
        rec = reconstruction_rows(model)
        grid, row_names = interpolation_rows(model, pairs, steps)
    except StorylabError as exc:  # the data set is not installed: samples need no real image, the others do
        print(f"note: only samples.png, since reconstructions and interpolations need real test images ({exc})")
        return written
    if rec is not None:
        sets = rec.shape[0] // (2 * num)
        written["reconstructions"] = save_grid(rec, out_dir / "reconstructions.png", nrow=num,
                                               row_labels=["real", "reconstruction"] * sets)
    written["interpolation"] = save_grid(grid, out_dir / "interpolation.png", nrow=steps + 2, row_labels=row_names)
    return written
