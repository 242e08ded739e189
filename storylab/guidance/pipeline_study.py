"""The guidance-schedule study of Wang et al. 2024 on any local diffusers text-to-image pipeline.

For every schedule x scale cell, :func:`run_pipeline_study` generates ``n`` images per prompt from
the *same* seeds (image j of prompt p uses seed ``seed + 1000 p + j`` in every cell), saves them as
PNG, and scores each cell with a local CLIP (:mod:`storylab.guidance.clip_features`): CLIP score,
and against a folder of reference images the Fréchet distance, precision/recall (k = 3),
density/coverage (k = 5) and the Vendi diversity, all on CLIP image embeddings. Results go to
``study.json`` with the paper-style plots (FID vs CLIP score and diversity vs CLIP score, one curve
per schedule). A killed run resumes: finished images are never regenerated, and a cell is done
once its ``cell.json`` is written. Classic pipelines are driven by :class:`ScheduledGuidance`.

ControlNet pipelines (``StableDiffusionControlNetPipeline``, one or several ControlNets) take one
:class:`PipelineControl` per ControlNet: a plain condition image (PIL, array or file) with its
conditioning scale and step window. Where the condition comes from (storylab's extractors live in
the images wing, which the foundation does not import) is the caller's business: ``storylab
evaluate pipeline --control canny=photo.png`` extracts it in the front door and records the
extractor and its settings in ``source``; the exact images the pipeline received are saved in
``OUT/conditions/``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from storylab.errors import StorylabError
from storylab.guidance.diffusers_callback import ScheduledGuidance, pipeline_scales
from storylab.guidance.modular import PIPELINE_RULES, modular_images, modular_pipeline, pipeline_guider
from storylab.guidance.names import SCHEDULE_VERSION
from storylab.guidance.schedules import parse_schedule
from storylab.io import atomic_path, atomic_savefig, atomic_write_json
from storylab.training.progress import progress_bar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
K_PR, K_DC = 3, 5


@dataclass
class PipelineControl:
    """One ControlNet's input: the condition ``image`` (PIL image, ``(H, W[, 3])`` uint8/[0, 1] array or file),
    its conditioning scale and its window of sampling progress (diffusers' ``controlnet_conditioning_scale``,
    ``control_guidance_start`` / ``control_guidance_end``); ``source`` says how it was made (study.json)."""

    image: Any
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    source: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineStudyConfig:
    """Inputs of one study; the CLI fills it from ``storylab evaluate pipeline``."""

    model: Path
    prompts: Path
    schedules: list[str]
    scales: list[float]
    out: Path
    n: int = 4
    steps: int = 30
    seed: int = 0
    negative_prompt: str = ""
    clip: Path | None = None
    reference: Path | None = None
    controls: list[PipelineControl] | None = None  # ControlNet pipelines: one per ControlNet, in order
    progress: bool = True
    rules: list[str] = field(default_factory=lambda: ["cfg"])  # other than cfg: SDXL through its modular blocks


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    path = Path(path)
    if not path.is_file():
        raise StorylabError(f"--prompts {path}: no such file")
    prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    prompts = [p for p in prompts if p and not p.startswith("#")]
    if not prompts:
        raise StorylabError(f"--prompts {path}: no prompts (one per line)")
    return prompts


def _check_saved(model: Path) -> None:
    if not (model / "model_index.json").is_file():
        raise StorylabError(f"--model {model}: not a saved diffusers pipeline (no model_index.json)")


def pipeline_resolution(model: str | Path) -> int:
    """Default image side of a saved UNet pipeline, read from its configs without loading weights.

    diffusers' rule: ``unet.sample_size * 2 ** (len(vae.block_out_channels) - 1)`` (64 x 8 = 512 for SD 1.5).
    """
    model = Path(model)
    _check_saved(model)
    try:
        unet = json.loads((model / "unet" / "config.json").read_text(encoding="utf-8"))
        vae = json.loads((model / "vae" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StorylabError(f"--model {model}: cannot read the unet/vae configs ({exc})") from None
    side, blocks = unet.get("sample_size"), vae.get("block_out_channels")
    if not isinstance(side, int) or not isinstance(blocks, list) or not blocks:
        raise StorylabError(f"--model {model}: the UNet's sample_size ({side!r}) is not one square side")
    return side * 2 ** (len(blocks) - 1)


def load_text_to_image(model: str | Path) -> Any:
    """Load a diffusers text-to-image pipeline saved on disk (nothing is downloaded)."""
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    model = Path(model)
    _check_saved(model)
    diffusers_logging.disable_progress_bar()  # our own bar covers the run; theirs would print per component
    transformers_logging.disable_progress_bar()
    try:
        pipe = DiffusionPipeline.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise StorylabError(f"--model {model}: cannot load the pipeline ({exc})") from None
    finally:
        diffusers_logging.enable_progress_bar()
        transformers_logging.enable_progress_bar()
    if not hasattr(pipe, "encode_prompt") or not hasattr(pipe, "unet"):
        raise StorylabError(f"--model {model}: {type(pipe).__name__} is not a UNet text-to-image pipeline")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _encode(pipe: Any, prompt: str, negative: str) -> dict[str, torch.Tensor]:
    """Prompt embeddings in the form :class:`ScheduledGuidance` takes (SD: 2 tensors, SDXL: 4)."""
    out = pipe.encode_prompt(prompt=prompt, device=pipe.device, num_images_per_prompt=1,
                             do_classifier_free_guidance=True, negative_prompt=negative)
    names = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
    return dict(zip(names, out))


def _slug(index: int, spec: str, scale: float, rule: str = "cfg") -> str:
    name = spec if rule == "cfg" else f"{rule}_{spec}"
    return f"{index:02d}_{re.sub(r'[^A-Za-z0-9.=-]+', '_', name)}_s{scale:g}"


def _save_png(image: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def _load_images(paths: list[Path]) -> list[Any]:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in paths]


def _check_run(out: Path, cfg: PipelineStudyConfig, prompts: list[str], conditions: list[Any]) -> None:
    settings: dict[str, Any] = {"model": str(cfg.model), "prompts": prompts, "n": cfg.n, "steps": cfg.steps,
                                "seed": cfg.seed, "negative_prompt": cfg.negative_prompt,
                                "schedule_version": SCHEDULE_VERSION}
    if cfg.rules != ["cfg"]:
        settings["rules"] = list(cfg.rules)
    if conditions:  # a study of a ControlNet pipeline: the same condition pixels, scales and windows
        settings["controls"] = [{"pixels_sha256": _pixel_digest(image), "scale": c.scale, "start": c.start,
                                 "end": c.end} for c, image in zip(cfg.controls or [], conditions)]
    run_file = out / "run.json"
    if run_file.is_file():
        before = json.loads(run_file.read_text())
        changed = [k for k in settings if before.get(k) != settings[k]]
        if changed:
            raise StorylabError(f"--out {out} holds a study made with other settings ({', '.join(changed)}); "
                                "use another --out to start a new one")
    else:
        atomic_write_json(run_file, settings)


def run_pipeline_study(cfg: PipelineStudyConfig) -> dict[str, Any]:
    """Generate every (schedule, scale) cell, score it, write study.json + plots into ``cfg.out``; return the result."""
    if cfg.n < 1 or cfg.steps < 1:
        raise StorylabError(f"--n and --steps must be >= 1, got {cfg.n} and {cfg.steps}")
    if not cfg.schedules or not cfg.scales:
        raise StorylabError("--schedules and --scales must name at least one value each")
    from storylab.guidance.registry import canonical_rule

    rules = [canonical_rule(r) for r in cfg.rules]
    for rule in rules:
        if rule not in PIPELINE_RULES:
            raise StorylabError(f"guidance '{rule}' does not run on a diffusers pipeline (choose from {', '.join(PIPELINE_RULES)})")
    if rules != ["cfg"] and cfg.controls:
        raise StorylabError("ControlNet pipelines run with --rules cfg only (the modular blocks here are SDXL's plain ones)")
    cells = [(rule, spec, scale) for rule in rules for spec in cfg.schedules for scale in cfg.scales]
    for rule, spec, scale in cells:  # validate every cell before loading or generating anything
        if parse_schedule(spec).needs_sigma:
            raise StorylabError(f"schedule '{spec}' reads sigma; the study drives classic pipelines by step")
        if rule == "cfg":
            pipeline_scales(spec, cfg.steps, scale)
        else:
            parse_schedule(spec).scales(cfg.steps, scale)
    for c in cfg.controls or []:
        _check_control(c)
    prompts = read_prompts(cfg.prompts)
    references = _reference_paths(cfg.reference)
    total_per_cell = len(prompts) * cfg.n
    if references is not None and (total_per_cell <= K_DC or len(references) <= K_DC):
        raise StorylabError(f"precision/recall/density/coverage need more than {K_DC} images per cell and in "
                            f"--reference (k = {K_DC}); got {total_per_cell} per cell and {len(references)} references")
    clip = None
    if cfg.clip is not None:
        from storylab.guidance.clip_features import ClipEmbedder

        clip = ClipEmbedder(cfg.clip)
    pipe = load_text_to_image(cfg.model)
    modular = modular_pipeline(pipe) if rules != ["cfg"] else None
    conditions = _control_images(pipe, cfg.controls)
    control = _control_kwargs(cfg.controls or [], conditions)
    embeds = [{**_encode(pipe, p, cfg.negative_prompt), "controlnet": bool(control)} for p in prompts]
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, cfg, prompts, conditions)
    for i, image in enumerate(conditions):  # exactly what the pipeline receives, to look at and to compare
        _save_png(image, out / "conditions" / f"control{i}.png")

    def image_path(cell_dir: Path, p: int, j: int) -> Path:
        return cell_dir / f"p{p:03d}_{j:02d}.png"

    done = sum(image_path(out / "cells" / _slug(i, s, c, r), p, j).is_file()
               for i, (r, s, c) in enumerate(cells) for p in range(len(prompts)) for j in range(cfg.n))
    records = []
    with progress_bar("pipeline study", total=len(cells) * total_per_cell, completed=done, enabled=cfg.progress) as bar:
        for index, (rule, spec, scale) in enumerate(cells):
            cell_dir = out / "cells" / _slug(index, spec, scale, rule)
            cell_file = cell_dir / "cell.json"
            if cell_file.is_file():
                records.append(json.loads(cell_file.read_text()))
                continue
            seconds, generated, rows = 0.0, 0, []
            for p, emb in enumerate(embeds):
                paths = [image_path(cell_dir, p, j) for j in range(cfg.n)]
                if all(path.is_file() for path in paths):
                    continue
                generators = [torch.Generator().manual_seed(cfg.seed + 1000 * p + j) for j in range(cfg.n)]
                t0 = time.perf_counter()
                if rule == "cfg":
                    callback = ScheduledGuidance(spec, scale=scale, num_steps=cfg.steps, **emb)
                    images = pipe(**callback.pipeline_kwargs(), **control, num_inference_steps=cfg.steps,
                                  num_images_per_prompt=cfg.n, generator=generators, output_type="pil").images
                else:
                    images = modular_images(modular, pipeline_guider(rule, spec, scale), prompts[p],
                                             cfg.negative_prompt, cfg.steps, cfg.n, generators, rows)
                seconds += time.perf_counter() - t0
                generated += len(images)
                missing = [(image, path) for image, path in zip(images, paths) if not path.is_file()]
                for image, path in missing:  # finished images are never rewritten
                    _save_png(image, path)
                bar.advance(len(missing))
            if rule == "cfg":
                nfe = int(sum(2 if s > 1 else 1 for s in pipeline_scales(spec, cfg.steps, scale)))
            else:  # UNet rows evaluated per image, counted (None when every image of the cell was already there)
                nfe = sum(rows) / generated if generated else None
            record = {"rule": rule, "schedule": spec, "scale": scale, "folder": str(cell_dir.relative_to(out)),
                      "nfe_per_image": nfe,
                      "seconds": seconds, "images_generated_this_run": generated,
                      "seconds_per_image": seconds / generated if generated else None}
            atomic_write_json(cell_file, record)
            records.append(record)
    return _score_and_report(out, cfg, prompts, records, clip, references)


def _check_control(c: PipelineControl) -> None:
    """diffusers' own limits on a ControlNet's scale and window, as one line before anything is loaded."""
    import math

    if not math.isfinite(c.scale) or c.scale < 0:
        raise StorylabError(f"control scale must be >= 0 and finite, got {c.scale}")
    if not 0.0 <= c.start < c.end <= 1.0:
        raise StorylabError(f"a ControlNet pipeline's control window needs 0 <= start < end <= 1, got {c.start}:{c.end}")


def _control_images(pipe: Any, controls: list[PipelineControl] | None) -> list[Any]:
    """The condition images as PIL images, one per ControlNet of ``pipe`` in its order (count checked)."""
    from PIL import Image

    nets = getattr(pipe, "controlnet", None)
    controls = controls or []
    if nets is None:
        if controls:
            raise StorylabError(f"--control / --control-image given, but {type(pipe).__name__} has no ControlNet")
        return []
    count = len(getattr(nets, "nets", [nets]))
    if len(controls) != count:
        raise StorylabError(f"this pipeline has {count} ControlNet(s): give {count} --control KIND=PATH (or "
                            f"--control-image FILE), one per ControlNet in the pipeline's order; got {len(controls)}")
    images = []
    for c in controls:
        if isinstance(c.image, (str, Path)):
            if not Path(c.image).is_file():
                raise StorylabError(f"--control-image {c.image}: no such file")
            images.append(_load_images([Path(c.image)])[0])
        elif isinstance(c.image, Image.Image):
            images.append(c.image)
        else:
            import numpy as np

            arr = np.asarray(c.image)
            if arr.dtype != np.uint8:
                arr = np.round(np.clip(arr, 0.0, 1.0) * 255).astype(np.uint8)
            images.append(Image.fromarray(arr))
    return images


def _control_kwargs(controls: list[PipelineControl], images: list[Any]) -> dict[str, Any]:
    """``image=`` and the conditioning scales / windows of a ControlNet pipeline call (lists for several nets)."""
    if not images:
        return {}
    rgb = [image.convert("RGB") for image in images]

    def one_or_all(values: list[Any]) -> Any:
        return values[0] if len(values) == 1 else values

    return {"image": one_or_all(rgb), "controlnet_conditioning_scale": one_or_all([c.scale for c in controls]),
            "control_guidance_start": one_or_all([c.start for c in controls]),
            "control_guidance_end": one_or_all([c.end for c in controls])}


def _pixel_digest(image: Any) -> str:
    return hashlib.sha256(f"{image.mode}{image.size}".encode() + image.tobytes()).hexdigest()


def _reference_paths(folder: Path | None) -> list[Path] | None:
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        raise StorylabError(f"--reference {folder}: no such folder")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise StorylabError(f"--reference {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def _score_and_report(out: Path, cfg: PipelineStudyConfig, prompts: list[str], records: list[dict[str, Any]],
                      clip: Any, references: list[Path] | None) -> dict[str, Any]:
    from storylab.guidance.clip_features import clip_score
    from storylab.metrics.distribution import distribution_report, vendi_score
    from storylab.metrics.floor import fid_warning

    result: dict[str, Any] = {"schedule_version": SCHEDULE_VERSION, "model": str(cfg.model), "prompts": prompts,
                              "n_per_prompt": cfg.n, "steps": cfg.steps, "seed": cfg.seed,
                              "seeds": f"image j of prompt p: seed {cfg.seed} + 1000 p + j, the same in every cell",
                              "features": clip.feature_name if clip is not None else None,
                              "reference": None if references is None else str(cfg.reference),
                              "n_reference": None if references is None else len(references),
                              "controls": [{"controlnet": i, "condition": f"conditions/control{i}.png", "scale": c.scale,
                                            "start": c.start, "end": c.end, **c.source}
                                           for i, c in enumerate(cfg.controls or [])],
                              "cells": records}
    if clip is not None:
        text = clip.text_features(prompts)
        ref_feats = None if references is None else clip.image_features(_load_images(references)).numpy()
        for record in records:
            paths = [out / record["folder"] / f"p{p:03d}_{j:02d}.png" for p in range(len(prompts)) for j in range(cfg.n)]
            feats = clip.image_features(_load_images(paths))
            record["clip_score"] = clip_score(feats, text.repeat_interleave(cfg.n, dim=0))
            record["vendi"] = vendi_score(feats.numpy())
            if ref_feats is not None:
                report = distribution_report(ref_feats, feats.numpy(), k_pr=K_PR, k_dc=K_DC)
                record.update({k: report[k] for k in ("fid", "precision", "recall", "density", "coverage")})
                result["fid_warning"] = fid_warning(int(feats.shape[0]), int(feats.shape[1]))
    atomic_write_json(out / "study.json", result)
    if clip is not None:
        plot_study(records, out, with_fid=references is not None)
    return result


def plot_study(records: list[dict[str, Any]], out: Path, with_fid: bool = True) -> list[Path]:
    """Paper-style trade-off plots (Wang et al. 2024, Fig. 3): FID vs CLIP score, diversity vs CLIP score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = list(dict.fromkeys(_curve(r) for r in records))
    panels = [("vendi", "diversity (Vendi score on CLIP image features)", "diversity_vs_clip.png")]
    if with_fid:
        panels.insert(0, ("fid", "Fréchet distance on CLIP image features (lower is better)", "fid_vs_clip.png"))
    written = []
    for key, ylabel, name in panels:
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
        for spec in specs:
            mine = sorted((r for r in records if _curve(r) == spec), key=lambda r: r["scale"])
            xs, ys = [r["clip_score"] for r in mine], [r[key] for r in mine]
            ax.plot(xs, ys, marker="o", linewidth=1.4, label=spec)
            for r, x, y in zip(mine, xs, ys):
                ax.annotate(f"{r['scale']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel("CLIP score (higher = closer to the prompt)")
        ax.set_ylabel(ylabel)
        ax.set_title("guidance rules and schedules: one curve each, points = scales")
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        written.append(atomic_savefig(fig, out / name))
        plt.close(fig)
    return written


def _curve(record: dict[str, Any]) -> str:
    """A cell's curve: its schedule, prefixed by its rule where the rule is not CFG."""
    rule = record.get("rule", "cfg")
    return record["schedule"] if rule == "cfg" else f"{rule}: {record['schedule']}"


def summary_rows(result: dict[str, Any]) -> list[list[str]]:
    """Rows of the end-of-run table: schedule, scale, CLIP score, FID, precision, recall, density, coverage, Vendi, NFE, s/image."""
    rows = []
    for r in result["cells"]:
        def f(key: str) -> str:
            value = r.get(key)
            return "-" if value is None else f"{value:.4g}"
        nfe = r["nfe_per_image"]
        rows.append([_curve(r), f"{r['scale']:g}", f("clip_score"), f("fid"), f("precision"), f("recall"),
                     f("density"), f("coverage"), f("vendi"), "-" if nfe is None else f"{nfe:g}", f("seconds_per_image")])
    return rows


__all__ = ["PipelineControl", "PipelineStudyConfig", "load_text_to_image", "pipeline_resolution", "plot_study", "read_prompts", "run_pipeline_study",
           "summary_rows"]
