"""``storylab evaluate zoo``: every family beside the pixel diffusion model, one table, the same yardstick.

Each row draws ``per_class`` samples for each of the ten classes (unconditional models draw the same
number, ignoring the labels) with one seed and is scored on the shipped digit feature network
against the *test* split, exactly like the foundation's schedule study (:mod:`storylab.images.study.study`):

* reconstruction error: mean squared error per pixel in [-1, 1] of decode(encode(x)) on the test
  split (models with an encoder; the LDM row is its VAE's);
* FID with the real-vs-real floor (train subsets of the same size against the test split);
* precision and recall (k = 3, Kynkäänniemi et al. 2019): precision is sample quality, recall the
  share of the real distribution that samples cover - mode collapse shows as low recall;
* adherence (the feature network's accuracy on the requested class) for conditional models only;
* sampling wall time per image (batched, one process) and parameter count (everything needed to
  sample: the VQ-VAE's prior, the LDM's VAE).

Writes ``zoo.json``, ``zoo.md`` and ``zoo.png`` (the sample grids in a row, real test digits first)
and prints a rich table.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch

from storylab.errors import StorylabError
from storylab.images.data.digits import NUM_CLASSES, load_digits_split
from storylab.images.zoo.common import load_zoo_model, reconstruction_error, shipped_path
from storylab.images.zoo.figures import class_labels
from storylab.io import atomic_savefig, atomic_write_json, atomic_write_text
from storylab.training.progress import progress_bar

ROWS = ("ae", "vae", "cvae", "vqvae", "gan", "ldm", "diffusion")
TITLES = {"ae": "AE", "vae": "VAE", "cvae": "CVAE", "vqvae": "VQ-VAE", "gan": "GAN", "ldm": "latent diffusion",
          "diffusion": "pixel diffusion"}


def parse_families(text: str) -> list[str]:
    """Comma list of rows; unknown names are one clear error."""
    rows = [r.strip().lower() for r in text.split(",") if r.strip()]
    if not rows:
        raise StorylabError("--families is empty")
    bad = [r for r in rows if r not in ROWS]
    if bad:
        raise StorylabError(f"unknown model family '{bad[0]}' (choose from {', '.join(ROWS)})")
    return list(dict.fromkeys(rows))


def parse_checkpoints(text: str, rows: Sequence[str]) -> dict[str, Path]:
    """Checkpoint per row: the shipped ones, overridden by ``family=path`` pairs."""
    from storylab.images.assets import DENOISER
    from storylab.io import run_path

    paths = {r: (DENOISER if r == "diffusion" else shipped_path(r)) for r in rows}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if "=" not in item:
            raise StorylabError(f"--checkpoints entries are family=path, got '{item}'")
        name, path = (s.strip() for s in item.split("=", 1))
        if name not in ROWS:
            raise StorylabError(f"unknown model family '{name}' in --checkpoints (choose from {', '.join(ROWS)})")
        paths[name] = Path(path)
    for r in rows:
        if not paths[r].exists():
            hint, trained = (("storylab train digits", run_path("digits_denoiser.safetensors")) if r == "diffusion" else
                             (f"storylab train {r} digits", run_path(f"zoo_{r}.safetensors")))
            raise StorylabError(f"{r} checkpoint missing: {paths[r]} (train it with `{hint}` and pass "
                                f"--checkpoints {r}={trained}, or leave it out of --families)")
    return paths


def draw(row: str, model: Any, labels: torch.Tensor, seed: int, cfg_scale: float, steps: int) -> torch.Tensor:
    """Samples of one row (the diffusion rows with DDIM and CFG at ``cfg_scale``)."""
    generator = torch.Generator().manual_seed(seed)
    if row == "diffusion":
        from storylab.images.networks.denoiser import sample_digits

        return sample_digits(model, labels, "cfg", cfg_scale, "constant", "ddim", steps, seed)
    if row == "ldm":
        return model.sample(labels, generator, scale=cfg_scale, steps=steps)
    return model.sample(labels, generator)


def family_facts(row: str, model: Any) -> dict[str, Any]:
    """Family-specific diagnostics: VAE active units, VQ-VAE codebook usage/perplexity on the test split."""
    test = load_digits_split("test")
    if row in ("vae", "cvae"):
        from storylab.images.zoo.vae import active_units

        return {"active_units": active_units(model, test.images, test.labels if model.conditional else None),
                "latent_dim": model.config.latent_dim}
    if row == "vqvae":
        from storylab.images.zoo.vqvae import codebook_usage, dataset_codes

        usage, ppl = codebook_usage(dataset_codes(model, test.images), model.config.codebook_size)
        return {"codebook_usage": usage, "perplexity": ppl, "codebook_size": model.config.codebook_size,
                "train_codebook_usage": getattr(model, "extra", {}).get("usage")}
    return {}


def evaluate_row(row: str, path: Path, labels: torch.Tensor, feature_net: Any, real_feats: torch.Tensor, seed: int,
                 cfg_scale: float, steps: int) -> tuple[dict[str, Any], torch.Tensor]:
    """Load, sample, time and score one row; returns (row dict, samples)."""
    from storylab.images.study.study import score_samples

    if row == "diffusion":
        from storylab.images.networks.denoiser import load_digit_model

        model: Any = load_digit_model(path)
        conditional, params, rec = True, sum(p.numel() for p in model.parameters()), None
    else:
        model = load_zoo_model(path, row)
        conditional = model.conditional or row == "ldm"
        params = model.num_parameters()
        test = load_digits_split("test")
        rec = reconstruction_error(model, test.images, test.labels)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        images = draw(row, model, labels, seed, cfg_scale, steps)
    seconds = time.perf_counter() - t0
    metrics = score_samples(images, labels, feature_net, real_feats)
    result = {"family": row, "title": TITLES[row], "checkpoint": str(path), "conditional": conditional,
              "reconstruction_mse": rec, "fid": metrics["fid"], "precision": metrics["precision"],
              "recall": metrics["recall"], "density": metrics["density"], "coverage": metrics["coverage"],
              "vendi": metrics["vendi"], "adherence": metrics["adherence"] if conditional else None,
              "seconds_per_image": seconds / labels.shape[0], "parameters": int(params),
              **family_facts(row, model)}
    if row in ("ldm", "diffusion"):
        result.update({"cfg_scale": cfg_scale, "ddim_steps": steps})
    return result, images


def evaluate_zoo(out: str | Path, rows: Sequence[str], paths: dict[str, Path], per_class: int, cfg_scale: float,
                 steps: int, seed: int, features: str | Path | None = None) -> dict[str, Any]:
    """Evaluate ``rows``; write zoo.json, zoo.md, zoo.png into ``out``; print the table; return the results."""
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference

    out = Path(out)
    feature_net = load_digit_feature_net(features)  # None: the shipped network
    labels = class_labels(per_class)
    ref = real_reference(feature_net, labels.shape[0], seed)
    results, grids = [], {}
    with progress_bar("evaluate zoo", total=len(rows)) as bar:
        for row in rows:
            result, images = evaluate_row(row, paths[row], labels, feature_net, ref["test_feats"], seed, cfg_scale, steps)
            results.append(result)
            grids[row] = images.reshape(NUM_CLASSES, per_class, 1, 8, 8)[:, :10].reshape(-1, 1, 8, 8)
            bar.advance()
    floor = ref["floor"]
    report = {"n_fake": int(labels.shape[0]), "n_real": ref["n_real"], "seed": seed, "per_class": per_class,
              "torch_threads": torch.get_num_threads(),
              "real_vs_real": {k: floor[k] for k in ("fid", "fid_std", "precision", "recall", "adherence")},
              "rows": results}
    atomic_write_json(out / "zoo.json", report)
    atomic_write_text(out / "zoo.md", markdown_table(report))
    plot_grids(grids, results, out / "zoo.png")
    print_table(report)
    return report


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None:
        return "-"
    return format(value, spec)


COLUMNS = ("model", "rec. MSE", "FID", "precision", "recall", "adherence", "ms/image", "params", "notes")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The table as strings: the real-vs-real floor first, then one row per model."""
    floor = report["real_vs_real"]
    rows = [["real vs real (floor)", "-", f"{floor['fid']:.3f} ± {floor['fid_std']:.3f}", _fmt(floor["precision"]),
             _fmt(floor["recall"]), _fmt(floor["adherence"]), "-", "-", "train subset vs test split"]]
    for r in report["rows"]:
        notes = []
        if "active_units" in r:
            notes.append(f"{r['active_units']}/{r['latent_dim']} active units")
        if "codebook_usage" in r:
            notes.append(f"codebook usage {r['codebook_usage']:.0%} (test), perplexity {r['perplexity']:.1f}")
        if "cfg_scale" in r:
            notes.append(f"CFG {r['cfg_scale']:g}, DDIM {r['ddim_steps']}")
        rows.append([r["title"], _fmt(r["reconstruction_mse"], ".4f"), _fmt(r["fid"]), _fmt(r["precision"]),
                     _fmt(r["recall"]), _fmt(r["adherence"]), _fmt(1000 * r["seconds_per_image"], ".2f"),
                     f"{r['parameters']:,}", "; ".join(notes)])
    return rows


def markdown_table(report: dict[str, Any]) -> str:
    """zoo.md: the table with a line on what was measured."""
    lines = [f"# Model zoo on the digits ({report['n_fake']} samples per model vs {report['n_real']} test images, "
             f"seed {report['seed']})", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "FID, precision and recall (k = 3) on the shipped digit feature network; adherence = feature-network "
              "accuracy on the requested class (conditional models only); rec. MSE per pixel in [-1, 1] on the test "
              "split; sampling time per image in a batch, wall clock on this machine.", ""]
    return "\n".join(lines)


def print_table(report: dict[str, Any]) -> None:
    """The rich table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model zoo ({report['n_fake']} samples per model vs {report['n_real']} test digits)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "notes") else "right")
    for i, row in enumerate(table_rows(report)):
        table.add_row(*row, style="dim" if i == 0 else None)
    console = Console()
    if not console.is_terminal:  # files and pipes get the whole table, not a wrapped one
        console = Console(width=160)
    console.print(table)


def plot_grids(grids: dict[str, torch.Tensor], results: list[dict[str, Any]], path: Path) -> Path:
    """One panel per model (10 x 10 samples, a row per class for conditional models), real test digits first."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.images.study.grid import grid_array
    from storylab.images.zoo.figures import test_examples

    real, _ = test_examples(10)
    panels = [("real test digits", real, "")] + [
        (r["title"], grids[r["family"]], f"FID {r['fid']:.2f}  recall {r['recall']:.2f}") for r in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels), 2.9), dpi=120, squeeze=False)
    for ax, (title, images, subtitle) in zip(axes[0], panels):
        ax.imshow(grid_array(images, nrow=10, upscale=4), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(subtitle, fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path
