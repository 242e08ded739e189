"""ControlNet commands: ``storylab control extract``, ``storylab train controlnet``, ``storylab evaluate controlnet``.

Also parses ``--control KIND=PATH[:scale[:start:end]]`` for ``storylab sample digits`` and offers the
ControlNet panel that ``storylab demo`` calls (:func:`controlnet_section`; the wing never imports the demo).
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer

from storylab.cli_groups import control_app, evaluate_app, train_app
from storylab.errors import StorylabError
from storylab.images.assets import shipped
from storylab.images.data.datasets import DATA_HELP
from storylab.io import run_path, use_hint

KIND_HELP = "canny (= edges), sobel, scribble, mask, distance (= depth)"
COND_SIZE_HELP = "32 for the 8x8 digits, 56 for the 28x28 sets"


def shipped_controlnet(kind: str, data: str = "digits") -> Path:
    """Path of the shipped ControlNet of ``data`` for a condition kind (it may not exist).

    The digits' are ``controlnet_<kind>.safetensors``; another set's ``<data>_controlnet_<kind>.safetensors``.
    """
    from storylab.images.control.conditions import check_kind

    return shipped(data, f"controlnet_{check_kind(kind)}")


def shipped_kinds(data: str = "digits") -> list[str]:
    """The condition kinds with a shipped ControlNet for ``data`` (canny and scribble for the digits)."""
    from storylab.images.control.conditions import KINDS

    return [k for k in KINDS if shipped_controlnet(k, data).exists()]


def condition_size(data: str) -> int:
    """Side of the condition maps of ``data``'s ControlNets: its image side times 2 per hint stage after the first."""
    from storylab.images.control.conditions import hint_channels_for  # torch-free: control extract needs no torch
    from storylab.images.data.datasets import resolve

    side = resolve(data).image_size
    return side * 2 ** (len(hint_channels_for(side)) - 1)


def _base_data(base: Path) -> str:
    """The data set a denoiser checkpoint records (``digits`` for one older than the field); a bad file is one line."""
    import json

    from storylab.training import read_metadata

    try:
        return str(json.loads(read_metadata(base).get("storylab.config", "{}")).get("data", "digits"))
    except (json.JSONDecodeError, AttributeError):
        raise StorylabError(f"not a storylab denoiser checkpoint (unreadable configuration): {base}") from None


def _command_line() -> str:
    return "storylab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def _console():
    from rich.console import Console

    return Console()


@dataclass
class ControlSpec:
    """One parsed ``--control``: the ControlNet (kind name or checkpoint), the condition map and its window."""

    net: str
    path: Path
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0


def parse_control(text: str) -> ControlSpec:
    """Parse ``KIND=PATH[:scale[:start:end]]``; KIND is a condition kind or a ControlNet ``.safetensors`` path."""
    from storylab.images.control.controlnet import check_window

    usage = f"--control must look like KIND=PATH[:scale[:start:end]], got '{text}'"
    if "=" not in text:
        raise StorylabError(usage)
    net, rest = text.split("=", 1)
    parts = rest.split(":")
    numbers: list[float] = []
    while len(parts) > 1 and len(numbers) < 3:
        try:
            numbers.insert(0, float(parts[-1]))
        except ValueError:
            break
        parts.pop()
    path = ":".join(parts)
    if not net.strip() or not path or len(numbers) == 2:
        raise StorylabError(usage)
    scale = numbers[0] if numbers else 1.0
    start, end = (numbers[1], numbers[2]) if len(numbers) == 3 else (0.0, 1.0)
    check_window(scale, start, end)
    return ControlSpec(net.strip(), Path(path), scale, start, end)


def load_controls(specs: list[ControlSpec], base: Any, polarity: str = "auto") -> list[Any]:
    """Load each spec's ControlNet (checking it fits ``base``) and condition map into :class:`Control` objects.

    ``polarity`` is :func:`~storylab.images.control.conditions.load_condition`'s; a map drawn as dark strokes
    on white paper is inverted under ``auto`` with a note on stderr.
    """
    from storylab.images.control.conditions import check_kind, load_condition
    from storylab.images.control.controlnet import Control, load_controlnet

    controls = []
    for spec in specs:
        if spec.net.endswith(".safetensors"):
            ckpt = Path(spec.net)
            wanted = None
        else:
            wanted = check_kind(spec.net)
            data = base.config.data
            ckpt = shipped_controlnet(wanted, data)
            if not ckpt.exists():
                raise StorylabError(f"no shipped {data} ControlNet for '{wanted}': train one with `storylab train controlnet "
                                    f"--data {data} --condition {wanted} --out CN.safetensors` and pass "
                                    f"--control CN.safetensors=PATH")
        net = load_controlnet(ckpt, base)
        if wanted is not None and net.config.kind != wanted:
            raise StorylabError(f"{ckpt} is a '{net.config.kind}' ControlNet, not '{wanted}'")
        image = load_condition(spec.path, net.config.kind, net.config.cond_size, polarity=polarity,
                               report=lambda note: print(note, file=sys.stderr))
        controls.append(Control(net, image, spec.scale, spec.start, spec.end))
    return controls


def pipeline_control(text: str, size: int) -> tuple[ControlSpec, Any, dict[str, Any]]:
    """Resolve one ``--control KIND=PATH[:scale[:start:end]]`` of ``evaluate pipeline`` for a diffusers ControlNet.

    Returns the parsed spec, the condition as an 8-bit grayscale PIL image (pixel for pixel what
    ``storylab control extract KIND PATH --size SIZE`` writes: same extractor, default seed and
    L1 gradient) and the extractor's settings. A diffusers pipeline brings its own ControlNets, so
    KIND must be a condition kind, not a checkpoint.
    """
    from storylab.images.control.conditions import condition_image, extract_file

    spec = parse_control(text)
    if spec.net.endswith(".safetensors"):
        raise StorylabError(f"--control {text}: a diffusers pipeline brings its own ControlNets; give a condition "
                            f"kind ({KIND_HELP}) before '='")
    cond, settings = extract_file(spec.net, spec.path, size=size)
    return spec, condition_image(cond), settings


@control_app.command("extract")
def extract_cmd(kind: str = typer.Argument(..., help=f"Condition kind: {KIND_HELP}."),
                image: Path = typer.Argument(..., help="Any grayscale or RGB image (PNG, JPEG, ...)."),
                out: Path = typer.Option(Path("condition.png"), "--out", help="Condition map to write (PNG)."),
                size: Optional[int] = typer.Option(None, "--size", show_default=f"that of --data's ControlNets: {COND_SIZE_HELP}",
                                                   help="Condition resolution."),
                data: str = typer.Option("digits", "--data", help=DATA_HELP + " (whose ControlNets will read the map: "
                                                                  "it sets the default --size)."),
                seed: int = typer.Option(0, "--seed", help="Random seed of the scribble jitter."),
                l2_gradient: bool = typer.Option(False, "--l2-gradient/--l1-gradient",
                                                 help="Canny only: L2 gradient magnitude instead of OpenCV's default L1 (the ControlNet annotator's)."),
                ) -> None:
    """Extract a ControlNet condition (edges, scribble, mask, distance map) from an image."""
    from storylab.images.control.conditions import check_kind, extract_file, save_condition

    kind = check_kind(kind)
    if out.suffix.lower() != ".png":
        raise StorylabError(f"--out must be a .png file, got {out}")
    size = condition_size(data) if size is None else size
    if not 8 <= size <= 1024:
        raise StorylabError(f"--size must be between 8 and 1024, got {size}")
    cond, _ = extract_file(kind, image, size=size, seed=seed, l2_gradient=l2_gradient)
    save_condition(cond, out)
    print(f"wrote {out}  ({kind}, {size}x{size}, {100 * float((cond > 0.5).mean()):.1f}% of pixels on)")


@train_app.command("controlnet")
def train_controlnet_cmd(condition: str = typer.Option("canny", "--condition", help=f"Condition kind: {KIND_HELP}."),
                         data: str = typer.Option("digits", "--data", help=DATA_HELP + " (the data set of the default --base)."),
                         base: Optional[Path] = typer.Option(None, "--base", show_default="the shipped denoiser of --data",
                                                             help="Frozen base denoiser; the ControlNet trains on its data set."),
                         out: Path = typer.Option(None, "--out", show_default=False,
                                                  help="ControlNet checkpoint to write (default: runs/controlnet_<kind>.safetensors "
                                                       "for the digits, runs/<data>_controlnet_<kind>.safetensors otherwise, "
                                                       "in the current directory; the shipped nets are never overwritten unless named here)."),
                         steps: int = typer.Option(1500, "--steps", help="Optimisation steps."),
                         batch_size: int = typer.Option(64, "--batch-size", help="Batch size."),
                         lr: float = typer.Option(5e-4, "--lr", help="AdamW learning rate (constant, no EMA, as the paper)."),
                         p_uncond: float = typer.Option(0.5, "--p-uncond", help="Probability of dropping the class label."),
                         mid_only: bool = typer.Option(False, "--mid-only", help="Connect only the middle block (small-scale training)."),
                         unlock_decoder: bool = typer.Option(False, "--unlock-decoder", help="Also train a copy of the base decoder."),
                         eval_every: int = typer.Option(100, "--eval-every", help="Measure condition fidelity every N steps."),
                         eval_count: int = typer.Option(48, "--eval-count", help="Held-out conditions per fidelity measurement."),
                         plot: Optional[Path] = typer.Option(None, "--plot", help="Convergence curve to write (default: beside the checkpoint, OUT with .convergence.png)."),
                         seed: int = typer.Option(0, "--seed", help="Random seed."),
                         resume: bool = typer.Option(True, "--resume/--no-resume", help="Resume from OUT's .state.safetensors if present."),
                         progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
                         ) -> None:
    """Train a ControlNet on a frozen denoiser (paper sec. 3.3), on the base's data set, and plot its fidelity curve."""
    from rich.table import Table

    from storylab.images.control.conditions import check_kind
    from storylab.images.control.control_training import ControlTrainingConfig, plot_convergence, train_controlnet
    from storylab.images.data.datasets import resolve

    kind = check_kind(condition)
    ds = resolve(data)
    base = base or _shipped_base(data)
    base_data = _base_data(base)  # a missing or unreadable base is one clear line before any work
    if data != "digits" and base_data != ds.name:
        raise StorylabError(f"--base {base} is a '{base_data}' denoiser, but --data names '{ds.name}' "
                            "(a ControlNet trains on its base's data set)")
    named = base_data if "/" not in base_data else "idx"
    out = out or run_path(shipped_controlnet(kind, named).name)
    if out.suffix != ".safetensors":
        raise StorylabError(f"--out must be a .safetensors file, got {out}")
    plot = plot or out.with_suffix(".convergence.png")
    if plot.suffix.lower() != ".png":
        raise StorylabError(f"--plot must be a .png file, got {plot}")
    cfg = ControlTrainingConfig(kind=kind, steps=steps, batch_size=batch_size, lr=lr, p_uncond=p_uncond,
                                mid_only=mid_only, unlock_decoder=unlock_decoder, eval_every=eval_every, eval_count=eval_count, seed=seed,
                                extra={"command": _command_line()})
    net, info = train_controlnet(out, base, cfg, progress=progress, resume=resume)
    metric = "F1" if kind in ("canny", "scribble", "mask") else "RMSE"
    plot_convergence({kind: info["fidelity"]}, plot, metric)
    table = Table(title=f"{kind} ControlNet: fidelity, {cfg.eval_count} held-out, no class")
    for h in ("step", metric, "loss"):
        table.add_column(h, justify="right")
    for point in info["fidelity"]:
        loss = "-" if point["step"] == 0 else f"{point['loss']:.4f}"
        table.add_row(str(point["step"]), f"{point['fidelity']:.3f}", loss)
    _console().print(table)
    print(f"saved {out}  ({info['seconds']:.0f} s; {metric} base {info['base_fidelity']:.3f} -> "
          f"{info['fidelity'][-1]['fidelity']:.3f}); wrote {plot}")
    sample_as = base_data if base_data in ("digits", "fashion-mnist", "mnist") else "digits"
    on_base = () if base == shipped(sample_as, "denoiser") else ("--checkpoint", base)  # a ControlNet fits only its base
    extract = f"storylab control extract {kind} IMAGE" + ("" if sample_as == "digits" else f" --data {sample_as}")
    print(use_hint("storylab", "sample", sample_as, *on_base, "--classes", "none",
                   "--control", f"{out}=condition.png") + f"  (condition.png from `{extract}`)")


def _shipped_base(data: str) -> Path:
    """The shipped denoiser of ``data``; a data set without one is one line saying how to get one."""
    from storylab.images.data.datasets import resolve

    ds = resolve(data)
    path = shipped(ds.name, "denoiser") if ds.path is None else None
    if path is None or not path.exists():
        raise StorylabError(f"no shipped denoiser for data set '{data}': train one (`storylab train "
                            f"{ds.name if ds.path is None else 'digits --data ' + data}`) and pass it as --base")
    return path


@evaluate_app.command("controlnet")
def evaluate_controlnet_cmd(out: Optional[Path] = typer.Option(None, "--out", show_default="controlnet-eval (digits), <data>-controlnet-eval otherwise",
                                                               help="Folder for results.json, convergence.png."),
                            data: str = typer.Option("digits", "--data", help=DATA_HELP + " (the data set of the default --base and ControlNets)."),
                            base: Optional[Path] = typer.Option(None, "--base", show_default="the shipped denoiser of --data",
                                                                help="Base denoiser (its data set gives the held-out conditions)."),
                            controlnets: Optional[str] = typer.Option(None, "--controlnets", show_default="every shipped kind of --data (digits: canny,scribble)",
                                                                      help="Comma list of kinds (shipped nets) or KIND=CKPT pairs."),
                            scales: str = typer.Option("0,0.5,1,1.5", "--scales", help="Comma list of control scales (0 = base model)."),
                            count: int = typer.Option(100, "--count", help="Held-out conditions per setting."),
                            steps: int = typer.Option(20, "--steps", help="Sampling steps (DDPM, the images wing's default sampler)."),
                            guidance_scale: float = typer.Option(3.0, "--guidance-scale", help="CFG scale when the class is given."),
                            seed: int = typer.Option(0, "--seed", help="Random seed (same noise in every row)."),
                            control_uncond: bool = typer.Option(True, "--control-uncond/--no-control-uncond",
                                                                help="Control CFG's unconditional branch too (the original's and diffusers' default); "
                                                                     "--no-control-uncond leaves it uncontrolled, as guess mode does."),
                            progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
                            ) -> None:
    """Condition fidelity, FID and class adherence by condition kind and scale, with the base model as reference."""
    from rich.table import Table

    from storylab.images.control.control_training import evaluate_controlnets, plot_convergence
    from storylab.io import atomic_write_json
    from storylab.metrics.floor import fid_warning
    from storylab.training import load_checkpoint

    out = out or Path("controlnet-eval" if data == "digits" else f"{data.replace('/', '_')}-controlnet-eval")
    if out.exists() and not out.is_dir():
        raise StorylabError(f"--out must be a folder, but {out} is a file")
    try:
        scale_list = [float(s) for s in scales.split(",") if s.strip()]
    except ValueError:
        raise StorylabError(f"--scales must be comma-separated numbers, got '{scales}'") from None
    if not scale_list or min(scale_list) < 0:
        raise StorylabError(f"--scales must be non-empty and >= 0, got '{scales}'")
    if count < 2 or steps < 1:
        raise StorylabError("--count must be >= 2 and --steps >= 1")
    base = base or _shipped_base(data)
    base_data = _base_data(base)
    controlnets = ",".join(shipped_kinds(base_data)) if controlnets is None else controlnets
    nets: dict[str, Path] = {}
    for item in (s.strip() for s in controlnets.split(",") if s.strip()):
        kind, _, path = item.partition("=")
        nets[kind] = Path(path) if path else shipped_controlnet(kind, base_data)
        if not nets[kind].exists():
            raise StorylabError(f"ControlNet checkpoint not found: {nets[kind]}")
    if not nets:
        raise StorylabError("--controlnets is empty")
    curves = {kind: load_checkpoint(path).extra.get("fidelity", []) for kind, path in nets.items()}
    results = evaluate_controlnets(base, nets, scale_list, count, steps, seed, guidance_scale, progress, control_uncond)
    warning = fid_warning(count, results[0]["feature_dim"])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", {"command": _command_line(), "control_uncond": control_uncond,
                                             "fid_warning": warning, "results": results})
    if all(curves.values()):
        plot_convergence(curves, out / "convergence.png")
    uncond = "unconditional branch " + ("controlled" if control_uncond else "not controlled")
    table = Table(title=f"ControlNet evaluation ({count} held-out conditions, {steps} steps of the default sampler, CFG "
                        f"{guidance_scale:g} with a class, {uncond}; scale 0 = base model; FID at n = {count}, real-vs-real "
                        f"FID = mean ± std over class-balanced train subsets of n = {results[0]['n_floor']})")
    for h in ("condition", "class", "scale", "fidelity", "FID", "real-vs-real FID", "adherence"):
        table.add_column(h, justify="right")
    for r in results:
        table.add_row(r["kind"], r["class"], f"{r['scale']:g}", f"{r['metric']} {r['fidelity']:.3f}", f"{r['fid']:.2f}",
                      f"{r['fid_floor']:.2f} ± {r['fid_floor_std']:.2f}", f"{r['adherence']:.3f}")
    _console().print(table)
    if warning:
        print(warning)
    print(f"wrote {out}/results.json" + (", convergence.png" if all(curves.values()) else ""))


def controlnet_section(out: Path, seed: int, per_condition: int = 8, steps: int = 15, data: str = "digits") -> dict[str, Any]:
    """Demo panel: a held-out image's condition, controlled samples without and with its class, the fidelity.

    ``data`` picks the shipped denoiser and ControlNets (``fashion-mnist``: its canny net); the
    figure is ``controlnet.png`` for the digits, ``<data>_controlnet.png`` otherwise.
    """

    from storylab.images.control.conditions import condition_fidelity
    from storylab.images.control.control_training import controlled_samples
    from storylab.images.control.controlnet import load_controlnet
    from storylab.images.data.datasets import class_names_of, installed, resolve
    from storylab.images.networks.denoiser import load_digit_model

    ds = resolve(data)
    kinds = shipped_kinds(ds.name)
    what = "digit model (edges and scribbles)" if ds.name == "digits" else f"{ds.name} model ({', '.join(kinds) or 'edges'})"
    title = f"ControlNet: spatial control of the {what}"
    header = ["condition", "class", "samples", "fidelity (ControlNet)", "fidelity (base model)"]
    if not kinds:
        return {"title": title, "images": [], "header": header, "rows": [],
                "metrics": {}, "note": "no shipped ControlNet checkpoint found"}
    base = load_digit_model(shipped(ds.name, "denoiser"))
    names = class_names_of(ds.name, base.num_classes)
    figure = "controlnet.png" if ds.name == "digits" else f"{ds.slug}_controlnet.png"
    panels, rows, metrics = [], [], {}
    plain_cache: dict[str, Any] = {}  # base samples depend only on the noise and the label
    for kind in kinds:
        net = load_controlnet(shipped_controlnet(kind, ds.name), base)
        labels, conds = panel_conditions(kind, base, net.config.cond_size, seed + 3, steps)
        cond = conds[:1].expand(per_condition, -1, -1, -1)
        label = labels[:1].expand(per_condition)
        for mode, lab in (("none", None), (names[int(labels[0])], label)):
            controlled = controlled_samples(base, net, cond, lab, 1.0, steps, seed)
            key = f"{mode}/{int(labels[0])}"
            if key not in plain_cache:
                plain_cache[key] = controlled_samples(base, None, cond, lab, 0.0, steps, seed)
            plain = plain_cache[key]
            f_c = condition_fidelity(kind, controlled, cond)
            f_b = condition_fidelity(kind, plain, cond)
            panels.append((kind, mode, cond[0], controlled, plain))
            rows.append([kind, mode, str(per_condition), f"{f_c.metric} {f_c.mean:.3f}", f"{f_b.metric} {f_b.mean:.3f}"])
            metrics[f"{kind}/{mode}"] = {"metric": f_c.metric, "controlnet": f_c.mean, "base": f_b.mean}
    _control_figure(panels, out / figure)
    source = ("a held-out test image" if installed(ds) else
              f"a base-model sample ({ds.name} is not installed here; seed {seed + 3})")
    return {"title": title + f" ({steps} sampling steps, scale 1; class 'none' = no label, no CFG)",
            "images": [figure], "header": header, "rows": rows, "metrics": metrics,
            "note": f"each condition is extracted from {source}"}


def panel_conditions(kind: str, base: Any, size: int, seed: int, steps: int = 15) -> tuple[Any, Any]:
    """Labels ``(2,)`` and ``kind`` conditions ``(2, 1, size, size)`` for the demo panel, from the base's data set.

    Held-out test images when the data set is installed (:func:`eval_conditions`); otherwise, so that
    the demo runs on a fresh install, the sources are the base model's own class-conditional samples
    (CFG 3, seed ``seed``; the panel's note says which).
    """
    import torch

    from storylab.images.control.conditions import extract_batch
    from storylab.images.control.control_training import eval_conditions
    from storylab.images.data.datasets import installed
    from storylab.images.networks.denoiser import DEFAULT_SAMPLER, sample_digits

    data = base.config.data
    if installed(data):
        _, labels, conds = eval_conditions(kind, 2, seed=seed, size=size, data=data)
        return labels, conds
    labels = torch.tensor([seed % base.num_classes, (seed + 1) % base.num_classes])
    sources = sample_digits(base, labels, "cfg", 3.0, "constant", DEFAULT_SAMPLER, steps, seed)
    return labels, extract_batch(kind, sources, size=size, seed=seed + 7)


def _control_figure(panels: list[tuple], path: Path) -> None:
    """Rows: condition | ControlNet samples | base samples on the same noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from storylab.images.study.grid import grid_array
    from storylab.io import atomic_savefig

    fig, axes = plt.subplots(len(panels), 3, figsize=(9.5, 1.5 * len(panels)), dpi=110,
                             gridspec_kw={"width_ratios": [1, 4, 4]}, squeeze=False)
    for row, (kind, mode, cond, controlled, plain) in zip(axes, panels):
        row[0].imshow(cond[0].numpy(), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{kind}\n(class {mode})", fontsize=8)
        row[1].imshow(grid_array(controlled, nrow=controlled.shape[0], upscale=4), cmap="gray", vmin=0, vmax=255)
        row[1].set_title("ControlNet samples", fontsize=8)
        row[2].imshow(grid_array(plain, nrow=plain.shape[0], upscale=4), cmap="gray", vmin=0, vmax=255)
        row[2].set_title("base model, same noise", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)

