"""``storylab demo``: the main job. Loads the shipped checkpoints and shows what storylab does.

It samples every digit under constant classifier-free guidance and under several guidance-weight
schedules of Wang et al. 2024 (same mean scale, same noise), measures each setting with the shipped
feature network (adherence, FID with its real-vs-real floor, precision, recall, diversity), and
writes ``samples.png``, ``weights.png``, ``metrics.json`` and ``report.html`` into ``--out``,
ending with a summary table. Further panels (ControlNet) register in :data:`SECTIONS`.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, Callable

import typer

from storylab.cli_groups import app

DEMO_SCHEDULES = ("constant", "linear", "cosine", "invlinear", "interval:start=0.2,stop=0.7")
DEMO_SCALE = 3.0

# Extra panels: callables (out_dir, seed) -> {"title", "html", "metrics", "rows"}; wings append here.
SECTIONS: list[Callable[[Path, int], dict[str, Any]]] = []


def guidance_section(out: Path, seed: int, per_class: int = 20, steps: int = 20) -> dict[str, Any]:
    """Sample all digits under each demo schedule and score them; write samples.png and weights.png."""
    import torch

    from storylab.guidance.plots import plot_weights
    from storylab.images.denoiser import load_digit_model, sample_digits
    from storylab.images.feature_training import load_digit_feature_net
    from storylab.images.study import real_reference, score_samples
    from storylab.training.progress import progress_bar

    model = load_digit_model(_asset("digits_denoiser.safetensors"))
    feature_net = load_digit_feature_net()
    labels = torch.arange(model.num_classes).repeat_interleave(per_class)
    ref = real_reference(feature_net, labels.shape[0], seed)
    results, grids = [], []
    with progress_bar("demo: sampling digits", total=len(DEMO_SCHEDULES)) as bar:
        for spec in DEMO_SCHEDULES:
            t0 = time.perf_counter()
            images, guided = sample_digits(model, labels, "cfg", DEMO_SCALE, spec, "ddim", steps, seed, return_model=True)
            seconds = time.perf_counter() - t0
            metrics = score_samples(images, labels, feature_net, ref["test_feats"])
            results.append({"schedule": spec, "scale": DEMO_SCALE, **metrics,
                            "nfe_per_sample": guided.nfe, "seconds": seconds})
            grids.append((spec, images.reshape(model.num_classes, per_class, 1, 8, 8)[:, :8].reshape(-1, 1, 8, 8)))
            bar.advance()
    _panel_figure(grids, out / "samples.png")
    plot_weights(DEMO_SCHEDULES, DEMO_SCALE, steps, out / "weights.png")
    floor = ref["floor"]
    rows = [[r["schedule"], f"{r['adherence']:.3f}", f"{r['fid']:.2f}", f"{floor['fid']:.2f}", f"{r['precision']:.3f}",
             f"{r['recall']:.3f}", f"{r['vendi']:.2f}", f"{r['nfe_per_sample']:.0f}"] for r in results]
    header = ["schedule", "adherence", "FID", "FID real/real", "precision", "recall", "Vendi/class", "NFE"]
    return {"title": f"Guidance-weight schedules (CFG, mean scale {DEMO_SCALE:g}, {steps} DDIM steps, "
                     f"{labels.shape[0]} samples vs {ref['n_real']} test digits)",
            "images": ["samples.png", "weights.png"], "header": header, "rows": rows,
            "metrics": {"settings": results, "real_vs_real": floor, "n_fake": int(labels.shape[0]), "n_real": ref["n_real"]}}


def _asset(name: str) -> Path:
    return Path(__file__).resolve().parent / "assets" / "images" / name


def _panel_figure(grids: list[tuple[str, Any]], path: Path) -> None:
    """One figure with a titled grid (rows = digits 0-9) per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.images.grid import grid_array
    from storylab.io import atomic_savefig

    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 4.2), dpi=110)
    for ax, (title, images) in zip(axes, grids):
        ax.imshow(grid_array(images, nrow=8, upscale=4), cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)


def write_report(out: Path, sections: list[dict[str, Any]], seconds: float) -> Path:
    """An HTML page that shows every section's images and table."""
    from storylab.io import atomic_write_text

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>storylab demo</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}img{max-width:100%;margin:0.5em 0}</style>",
             "</head><body><h1>storylab demo</h1>",
             f"<p>Generated in {seconds:.1f} s from the checkpoints shipped with storylab.</p>"]
    for section in sections:
        parts.append(f"<h2>{html.escape(section['title'])}</h2>")
        for image in section.get("images", []):
            parts.append(f"<img src='{html.escape(image)}' alt='{html.escape(image)}'>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in section["header"]) + "</tr>")
        for row in section["rows"]:
            parts.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</table>")
        if section.get("note"):
            parts.append(f"<p>{html.escape(section['note'])}</p>")
    parts.append("</body></html>")
    return atomic_write_text(out / "report.html", "\n".join(parts))


@app.command("demo")
def demo(out: Path = typer.Option(Path("storylab-demo"), "--out", help="Folder for samples.png, weights.png, metrics.json, report.html."),
         seed: int = typer.Option(0, "--seed", help="Random seed (same noise for every setting)."),
         ) -> None:
    """The main job: guided digit generation with weight schedules, measured, with an HTML report."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from storylab.errors import StorylabError
    from storylab.io import atomic_write_json

    if out.exists() and not out.is_dir():
        raise StorylabError(f"--out must be a folder, but {out} is a file")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    sections = [guidance_section(out, seed)] + [section(out, seed) for section in SECTIONS]
    seconds = time.perf_counter() - t0
    atomic_write_json(out / "metrics.json", {"seconds": seconds, "seed": seed,
                                             "sections": {s["title"]: s["metrics"] for s in sections}})
    write_report(out, sections, seconds)
    console = Console(width=max(120, Console().width))
    for section in sections:
        table = Table(title=section["title"])
        for h in section["header"]:
            table.add_column(h, justify="right")
        for row in section["rows"]:
            table.add_row(*row)
        console.print(table)
    console.print(f"wrote {out}/samples.png, weights.png, metrics.json, report.html in {seconds:.1f} s")
