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
from storylab.images.zoo.common import (DEFAULT_DATA, check_data_matches, load_data_split, load_zoo_model,
                                        reconstruction_error, shipped_path)
from storylab.images.defaults import DEFAULT_SAMPLER, default_steps, resolve_sampler
from storylab.images.zoo.figures import class_labels, class_names
from storylab.io import atomic_savefig, atomic_write_json, atomic_write_text
from storylab.training.progress import progress_bar

LDM_STEPS = 50  # DDIM steps of the latent diffusion row unless --steps says otherwise
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


def parse_checkpoints(text: str, rows: Sequence[str], data: str = DEFAULT_DATA) -> dict[str, Path]:
    """Checkpoint per row: the shipped ones of ``data``, overridden by ``family=path`` pairs."""
    from storylab.images.assets import shipped
    from storylab.io import run_path

    paths = {r: (shipped(data, "denoiser") if r == "diffusion" else shipped_path(r, data)) for r in rows}
    for item in (t.strip() for t in text.split(",") if t.strip()):
        if "=" not in item:
            raise StorylabError(f"--checkpoints entries are family=path, got '{item}'")
        name, path = (s.strip() for s in item.split("=", 1))
        if name not in ROWS:
            raise StorylabError(f"unknown model family '{name}' in --checkpoints (choose from {', '.join(ROWS)})")
        paths[name] = Path(path)
    for r in rows:
        if not paths[r].exists():
            slug = data.replace("-", "_") if ":" not in data else "idx"
            prefix = "" if data == "digits" else f"{slug}_"
            hint, trained = ((f"storylab train {data}", run_path(f"{slug}_denoiser.safetensors")) if r == "diffusion" else
                             (f"storylab train {r} {data}", run_path(f"{prefix}zoo_{r}.safetensors")))
            raise StorylabError(f"{r} checkpoint missing: {paths[r]} (train it with `{hint}` and pass "
                                f"--checkpoints {r}={trained}, or leave it out of --families)")
    return paths


def draw(row: str, model: Any, labels: torch.Tensor, seed: int, cfg_scale: float, steps: int | None) -> torch.Tensor:
    """Samples of one row (the diffusion row with the default sampler and CFG at ``cfg_scale``)."""
    generator = torch.Generator().manual_seed(seed)
    if row == "diffusion":
        from storylab.images.networks.denoiser import sample_digits

        return sample_digits(model, labels, "cfg", cfg_scale, "constant", DEFAULT_SAMPLER, steps, seed)
    if row == "ldm":
        return model.sample(labels, generator, scale=cfg_scale, steps=steps or LDM_STEPS)
    return model.sample(labels, generator)


def test_split(data: str) -> Any:
    """The test split of ``data``, or ``None`` (with a note) when the data set is not installed: the sample
    metrics still run on the shipped reference, only the reconstruction and per-family columns need images."""
    try:
        return load_data_split(data, "test")
    except StorylabError as exc:
        print(f"note: no test images ({exc}); reconstruction error, active units and codebook usage are left out")
        return None


def family_facts(row: str, model: Any, test: Any) -> dict[str, Any]:
    """Family-specific diagnostics: VAE active units, VQ-VAE codebook usage/perplexity on the test split."""
    if test is None:
        return {}
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
                 cfg_scale: float, steps: int, data: str = DEFAULT_DATA, stats: Any = None, test: Any = None
                 ) -> tuple[dict[str, Any], torch.Tensor]:
    """Load (checking the data set), sample, time and score one row; returns (row dict, samples)."""
    from storylab.images.study.study import score_samples

    if row == "diffusion":
        from storylab.images.networks.denoiser import load_digit_model

        model: Any = load_digit_model(path)
        check_data_matches(path, str(getattr(model.config, "data", DEFAULT_DATA)), data)
        conditional, params, rec = True, sum(p.numel() for p in model.parameters()), None
    else:
        model = load_zoo_model(path, row, data=data)
        conditional = model.conditional or row == "ldm"
        params = model.num_parameters()
        rec = reconstruction_error(model, test.images, test.labels) if test is not None else None
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        images = draw(row, model, labels, seed, cfg_scale, steps)
    seconds = time.perf_counter() - t0
    metrics = score_samples(images, labels, feature_net, real_feats, stats)
    result = {"family": row, "title": TITLES[row], "checkpoint": str(path), "conditional": conditional,
              "reconstruction_mse": rec, "fid": metrics["fid"], "precision": metrics["precision"],
              "recall": metrics["recall"], "density": metrics["density"], "coverage": metrics["coverage"],
              "vendi": metrics["vendi"], "adherence": metrics["adherence"] if conditional else None,
              "seconds_per_image": seconds / labels.shape[0], "parameters": int(params),
              "n_fake": int(labels.shape[0]), **family_facts(row, model, test)}
    if row == "ldm":
        result.update({"cfg_scale": cfg_scale, "sampler": "ddim", "sampling_steps": steps or LDM_STEPS})
    if row == "diffusion":
        sampler = resolve_sampler(DEFAULT_SAMPLER, model.config.prediction)
        result.update({"cfg_scale": cfg_scale, "sampler": sampler,
                       "sampling_steps": steps or default_steps(sampler, model.config.prediction)})
    return result, images


def evaluate_zoo(out: str | Path, rows: Sequence[str], paths: dict[str, Path], per_class: int, cfg_scale: float,
                 steps: int, seed: int, features: str | Path | None = None, data: str = DEFAULT_DATA) -> dict[str, Any]:
    """Evaluate ``rows`` on data set ``data``; write zoo.json, zoo.md, zoo.png into ``out``; print the table.

    FID is taken against the test split's feature statistics and PRDC against the reference's real
    features (the shipped reference where there is one, so no images are needed); the floor is the
    same metrics for class-balanced train subsets of the sample's size, FID as mean ± std over 10.
    """
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference
    from storylab.metrics.floor import fid_warning

    out = Path(out)
    names = class_names(data)
    feature_net = load_digit_feature_net(features, data=data)  # None: the data set's shipped network
    labels = class_labels(per_class, len(names))
    ref = real_reference(feature_net, labels.shape[0], seed, data=data, feature_net_path=features)
    warning = fid_warning(int(labels.shape[0]), ref["dim"])
    if warning:
        print(warning)
    test = test_split(data)
    results, grids = [], {}
    with progress_bar("evaluate zoo", total=len(rows)) as bar:
        for row in rows:
            result, images = evaluate_row(row, paths[row], labels, feature_net, ref["test_feats"], seed, cfg_scale, steps,
                                          data, ref["stats"], test)
            results.append(result)
            size = images.shape[-1]
            grids[row] = images.reshape(len(names), per_class, 1, size, size)[:, :10].reshape(-1, 1, size, size)
            bar.advance()
    floor = ref["floor"]
    report = {"data": data, "class_names": list(names), "n_fake": int(labels.shape[0]), "n_real": ref["n_real"],
              "n_prdc_real": int(ref["test_feats"].shape[0]), "n_floor": ref["n_floor"], "feature_dim": ref["dim"],
              "fid_warning": warning, "seed": seed, "per_class": per_class, "torch_threads": torch.get_num_threads(),
              "real_vs_real": {k: floor[k] for k in ("fid", "fid_std", "precision", "recall", "density", "coverage",
                                                     "vendi", "adherence")},
              "rows": results}
    atomic_write_json(out / "zoo.json", report)
    atomic_write_text(out / "zoo.md", markdown_table(report))
    plot_grids(grids, results, out / "zoo.png", data, names)
    print_table(report)
    return report


def _fmt(value: Any, spec: str = ".3f") -> str:
    """A table cell; ``None`` and NaN (not defined for this row, e.g. the floor's adherence) are "-"."""
    if value is None or value != value:
        return "-"
    return format(value, spec)


COLUMNS = ("model", "rec. MSE", "FID", "precision", "recall", "density", "coverage", "diversity", "adherence",
           "ms/image", "params", "notes")


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """The table as strings: the real-vs-real floor first, then one row per model."""
    floor = report["real_vs_real"]
    n_floor = report.get("n_floor", report["n_fake"])
    rows = [[f"real vs real (floor, n = {n_floor})", "-", f"{floor['fid']:.3f} ± {floor['fid_std']:.3f}",
             _fmt(floor["precision"]), _fmt(floor["recall"]), _fmt(floor.get("density")), _fmt(floor.get("coverage")),
             _fmt(floor.get("vendi"), ".2f"), _fmt(floor["adherence"]), "-", "-",
             "balanced train subsets vs test (FID: mean ± std of 10)"]]
    for r in report["rows"]:
        notes = []
        if "active_units" in r:
            notes.append(f"{r['active_units']}/{r['latent_dim']} active units")
        if "codebook_usage" in r:
            notes.append(f"codebook usage {r['codebook_usage']:.0%} (test), perplexity {r['perplexity']:.1f}")
        if "cfg_scale" in r:
            notes.append(f"CFG {r['cfg_scale']:g}, {r.get('sampler', 'ddim').upper()} "
                         f"{r.get('sampling_steps', r.get('ddim_steps'))}")
        rows.append([r["title"], _fmt(r["reconstruction_mse"], ".4f"), _fmt(r["fid"]), _fmt(r["precision"]),
                     _fmt(r["recall"]), _fmt(r.get("density")), _fmt(r.get("coverage")), _fmt(r.get("vendi"), ".2f"),
                     _fmt(r["adherence"]), _fmt(1000 * r["seconds_per_image"], ".2f"),
                     f"{r['parameters']:,}", "; ".join(notes)])
    return rows


def markdown_table(report: dict[str, Any]) -> str:
    """zoo.md: the table with a line on what was measured."""
    lines = [f"# Model zoo on {report.get('data', DEFAULT_DATA)} (n = {report['n_fake']} samples per model; FID vs the "
             f"{report['n_real']} test images' statistics, seed {report['seed']})", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(report)]
    lines += ["", "FID, precision and recall (k = 3), density and coverage (k = 5) on the data set's shipped feature "
              "network (PRDC's real side: "
              f"{report.get('n_prdc_real', report['n_real'])} test images); diversity = Vendi score of the features "
              "within each class; adherence = feature-network accuracy on the requested class (conditional models "
              "only); rec. MSE per pixel in [-1, 1] on the test split; sampling time per image in a batch, wall clock "
              "on this machine.", ""]
    if report.get("fid_warning"):
        lines += [report["fid_warning"], ""]
    return "\n".join(lines)


def print_table(report: dict[str, Any]) -> None:
    """The rich table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model zoo on {report.get('data', DEFAULT_DATA)} (n = {report['n_fake']} samples per model; "
                        f"FID vs {report['n_real']} test images)")
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("model", "notes") else "right")
    for i, row in enumerate(table_rows(report)):
        table.add_row(*row, style="dim" if i == 0 else None)
    console = Console()
    if not console.is_terminal:  # files and pipes get the whole table, not a wrapped one
        console = Console(width=160)
    console.print(table)


def plot_grids(grids: dict[str, torch.Tensor], results: list[dict[str, Any]], path: Path, data: str = DEFAULT_DATA,
               names: Sequence[str] | None = None) -> Path:
    """One panel per model (10 x 10 samples, a row per class for conditional models), real test images first.

    The class names label the rows of the first panel (real images, and the rows of every conditional model).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.images.study.grid import grid_array
    from storylab.images.zoo.figures import test_examples

    try:
        real, _ = test_examples(10, data=data)
        panels = [(f"real test {'digits' if data == 'digits' else 'images'}", real, "")]
    except StorylabError:  # the data set is not installed: the model panels only
        panels = []
    panels += [(r["title"], grids[r["family"]], f"FID {r['fid']:.2f}  recall {r['recall']:.2f}") for r in results]
    size = int(next(iter(grids.values())).shape[-1]) if grids else 8
    upscale = 4 if size <= 8 else 1
    fig, axes = plt.subplots(1, len(panels), figsize=(2.3 * len(panels) + (0.9 if names else 0), 2.9), dpi=120,
                             squeeze=False)
    for i, (ax, (title, images, subtitle)) in enumerate(zip(axes[0], panels)):
        ax.imshow(grid_array(images, nrow=10, upscale=upscale), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(subtitle, fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
        if i == 0 and names:  # one row per class: name the rows once, at the left
            tile = size * upscale + 2
            ax.set_yticks([2 + tile * k + tile / 2 for k in range(len(names))], list(names), fontsize=6)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
    return path
