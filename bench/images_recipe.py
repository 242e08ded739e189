"""Training recipes of the 28x28 pixel denoiser side by side, at equal wall-clock: FID against training minutes.

Every recipe trains on the same Fashion-MNIST batches (one shared loader, one batch drawn per round and
given to every recipe that is due), one thread, and the recipe that has spent the least training time so
far takes the next step, so all of them see the same machine load and end with the same minutes. Training
time is the CPU time of the training steps (``time.thread_time``, one thread): on a shared machine a step's
wall time also counts the moments other processes held the core, which would charge a load spike to
whichever recipe happened to be stepping; on an idle machine the two are the same. At each
``--every`` minutes of its own training time a recipe's EMA weights are scored with the same metric:
FID of ``--per-class`` samples per class at CFG ``--cfg`` (the default sampler, DDPM, at the studies'
20 steps) against the test split, with the class-balanced real-vs-real floor at the same n beside it.

Recipes (``--recipes``):

* ``storylab`` - the default of ``storylab train fashion-mnist`` (v-prediction, Min-SNR-5, lr 2e-3,
  EMA 0.995 with warm-up, 64-wide time embedding);
* ``storylab-old`` - the first recipe (``--recipe eps``: eps target, uniform MSE, lr 1e-3, EMA 0.995
  without warm-up, 16-wide time embedding);
* ``diffusers`` - diffusers' ``UNet2DModel`` with a class embedding at the same parameter count, its
  ``DDPMScheduler`` (1,000 linear betas, eps target) and the recipe of diffusers' unconditional-training
  example (``examples/unconditional_image_generation/train_unconditional.py``: AdamW lr 1e-4,
  betas (0.95, 0.999), weight decay 1e-6, eps 1e-8, cosine schedule after 500 warm-up steps, ``EMAModel``
  with inv_gamma 1, power 3/4, max decay 0.9999), plus label dropout 0.1 for CFG.

Usage: OMP_NUM_THREADS=1 python bench/images_recipe.py [--minutes 20] [--every 5] [--per-class 20]
       [--recipes storylab,storylab-old,diffusers] [--batch-size 64] [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from storylab.images.networks.denoiser import DigitDiffusion, recipe_config, sample_digits
from storylab.training.loop import TrainConfig, lr_lambda, make_ema


@dataclass
class Recipe:
    """One candidate: its network, its loss on a batch, its optimiser, its EMA and a sampler-facing model."""

    name: str
    net: torch.nn.Module
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    ema_update: Callable[[], None]
    sampling_model: Callable[[], DigitDiffusion]
    params: int
    seconds: float = 0.0
    steps: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def storylab_recipe(name: str, recipe: str, total_steps: int) -> Recipe:
    config, tc = recipe_config(recipe, data="fashion-mnist", channels=16, steps=total_steps)
    torch.manual_seed(0)
    model = DigitDiffusion(config)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, betas=tc.betas, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(tc))
    ema = make_ema(model, tc.ema_decay, tc.ema_warmup)

    def step_loss(x, y):
        return model.loss(x, y)

    def update():
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        ema.update_parameters(model)

    return Recipe(name, model, step_loss, opt, sched, update, lambda: ema.module.eval(), _params(model.unet))


class _DiffusersDenoiser(DigitDiffusion):
    """A DigitDiffusion whose eps network is a diffusers UNet2DModel (for sampling with our samplers)."""

    def __init__(self, unet2d: torch.nn.Module, alpha_bar: torch.Tensor) -> None:
        config, _ = recipe_config("eps", data="fashion-mnist", channels=8, steps=1)
        super().__init__(config)
        self.unet2d = unet2d
        self.alpha_bar = alpha_bar

    def denoiser(self, x, t, cond):
        labels = cond["labels"] if isinstance(cond, dict) else cond
        return self.unet2d(x, t, class_labels=labels).sample


def diffusers_recipe(target_params: int, total_steps: int) -> Recipe:
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel
    from images_fashion_budgets import diffusers_unet  # the sibling bench script (bench/ is on sys.path)

    torch.manual_seed(0)
    net = diffusers_unet(target_params)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.95, 0.999), weight_decay=1e-6, eps=1e-8)
    lr_sched = get_cosine_schedule_with_warmup(opt, num_warmup_steps=500, num_training_steps=total_steps)
    ema = EMAModel(net.parameters(), decay=0.9999, use_ema_warmup=True, inv_gamma=1.0, power=0.75)

    def step_loss(x, y):
        drop = torch.rand(y.shape[0]) < 0.1
        y = torch.where(drop, torch.full_like(y, 10), y)
        noise = torch.randn_like(x)
        t = torch.randint(0, 1000, (x.shape[0],))
        noisy = scheduler.add_noise(x, noise, t)
        return torch.nn.functional.mse_loss(net(noisy, t, class_labels=y).sample, noise)

    def update():
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # the example's max_grad_norm
        opt.step()
        lr_sched.step()
        ema.step(net.parameters())

    def sampling_model():
        copy_net = copy.deepcopy(net)
        ema.copy_to(copy_net.parameters())
        return _DiffusersDenoiser(copy_net.eval(), scheduler.alphas_cumprod.float()).eval()

    return Recipe("diffusers", net, step_loss, opt, lr_sched, update, sampling_model, _params(net))


def score(model: DigitDiffusion, per_class: int, cfg: float, feature_net, ref) -> dict[str, float]:
    from storylab.images.study.study import score_samples
    from storylab.images.defaults import DEFAULT_SAMPLER, STUDY_STEPS

    labels = torch.arange(10).repeat_interleave(per_class)
    parts = [sample_digits(model, labels[i:i + 100], "cfg", cfg, "constant", DEFAULT_SAMPLER, STUDY_STEPS, k)
             for k, i in enumerate(range(0, labels.shape[0], 100))]
    images = torch.cat(parts)
    metrics = score_samples(images, labels, feature_net, ref["test_feats"], ref["stats"])
    return {"fid": metrics["fid"], "adherence": metrics["adherence"], "precision": metrics["precision"],
            "recall": metrics["recall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="training minutes (CPU) per recipe")
    parser.add_argument("--every", type=float, default=5.0, help="score every this many training minutes")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--recipes", default="storylab,storylab-old,diffusers")
    parser.add_argument("--assumed-steps", type=int, default=0,
                        help="steps the cosine schedules decay over (default: estimated from the first 20 steps)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    from storylab.images.data.datasets import load_split
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference

    torch.set_num_threads(1)
    data = load_split("fashion-mnist", "train")
    gen = torch.Generator().manual_seed(0)
    feature_net = load_digit_feature_net(data="fashion-mnist")
    ref = real_reference(feature_net, 10 * args.per_class, 0, 10, data="fashion-mnist")
    floor = ref["floor"]

    names = [n.strip() for n in args.recipes.split(",") if n.strip()]

    def batch():
        idx = torch.randint(0, data.images.shape[0], (args.batch_size,), generator=gen)
        return data.images[idx], data.labels[idx]

    # the cosine schedules decay over the steps each recipe will take in its minutes: estimate them first
    probe = {}
    if not args.assumed_steps:
        for name in names:
            r = build(name, 1000)
            x, y = batch()
            t0 = time.thread_time()
            for _ in range(10):
                loss = r.loss(x, y)
                r.optimizer.zero_grad()
                loss.backward()
                r.ema_update()
            probe[name] = (time.thread_time() - t0) / 10
    recipes = [build(n, args.assumed_steps or max(100, int(args.minutes * 60 / probe[n]))) for n in names]
    budget, every = args.minutes * 60, args.every * 60
    next_score = {r.name: every for r in recipes}
    wall0 = time.perf_counter()
    while any(r.seconds < budget for r in recipes):
        x, y = batch()
        for r in recipes:
            if r.seconds >= budget or r.seconds > min(q.seconds for q in recipes if q.seconds < budget) + 1.0:
                continue  # the recipe that is ahead waits, so all spend the same minutes under the same load
            r.net.train()
            t0 = time.thread_time()
            loss = r.loss(x, y)
            r.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            r.ema_update()
            r.seconds += time.thread_time() - t0
            r.steps += 1
            if r.seconds >= next_score[r.name] or r.seconds >= budget:
                next_score[r.name] += every
                metrics = score(r.sampling_model(), args.per_class, args.cfg, feature_net, ref)
                r.curve.append({"minutes": r.seconds / 60, "steps": r.steps, **metrics})
                print(f"{r.name:>14}  {r.seconds / 60:5.1f} min  {r.steps:6d} steps  FID {metrics['fid']:7.2f}  "
                      f"adherence {metrics['adherence']:.3f}  (floor {floor['fid']:.2f} ± {floor['fid_std']:.2f}, "
                      f"n = {10 * args.per_class})", flush=True)
    result = {"n": 10 * args.per_class, "floor": floor["fid"], "floor_std": floor["fid_std"], "cfg": args.cfg,
              "batch_size": args.batch_size, "minutes": args.minutes, "wall_minutes": (time.perf_counter() - wall0) / 60,
              "recipes": {r.name: {"params": r.params, "steps": r.steps, "curve": r.curve} for r in recipes}}
    print(f"\nFID against training minutes (n = {result['n']}, floor {floor['fid']:.2f} ± {floor['fid_std']:.2f}, "
          f"CFG {args.cfg}, CPU minutes of one thread):")
    for r in recipes:
        print(f"  {r.name:>14} ({r.params:,} parameters, {r.steps} steps): "
              + ", ".join(f"{p['minutes']:.1f} min {p['fid']:.1f}" for p in r.curve))
    if "diffusers" in result["recipes"] and "storylab" in result["recipes"]:
        final = result["recipes"]["diffusers"]["curve"][-1]
        ours = result["recipes"]["storylab"]["curve"]
        reached = next((p for p in ours if p["fid"] <= final["fid"]), None)
        if reached:
            print(f"  storylab reaches diffusers' final FID {final['fid']:.1f} after {reached['minutes']:.1f} of "
                  f"{final['minutes']:.1f} min: time ratio <= {reached['minutes'] / final['minutes']:.2f} (scored points only)")
        else:
            print(f"  storylab does not reach diffusers' final FID {final['fid']:.1f} within the budget")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if args.plot:
        plot(result, args.plot)


def build(name: str, total_steps: int) -> Recipe:
    if name == "storylab":
        return storylab_recipe(name, "v-min-snr", total_steps)
    if name == "storylab-old":
        return storylab_recipe(name, "eps", total_steps)
    if name == "diffusers":
        ours = storylab_recipe("probe", "v-min-snr", 1)
        return diffusers_recipe(ours.params, total_steps)
    raise SystemExit(f"error: unknown recipe '{name}' (storylab, storylab-old, diffusers)")


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for name, rec in result["recipes"].items():
        ax.plot([p["minutes"] for p in rec["curve"]], [p["fid"] for p in rec["curve"]], marker="o",
                label=f"{name} ({rec['params'] / 1e3:.0f}k params)")
    ax.axhline(result["floor"], color="grey", ls="--", label=f"real-vs-real floor {result['floor']:.1f}")
    ax.set_yscale("log")
    ax.set_xlabel("training minutes (CPU time of one thread)")
    ax.set_ylabel(f"FID (n = {result['n']}, CFG {result['cfg']})")
    ax.set_title("Fashion-MNIST pixel diffusion: recipes at equal training minutes")
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
