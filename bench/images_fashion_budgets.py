"""Budgets of issue 17 (images wing on Fashion-MNIST), measured side by side in one run.

1. Training throughput: images/s of a training step (forward + backward + AdamW) of our 28x28 UNet
   against diffusers' ``UNet2DModel`` with a class embedding, widened to the same parameter count,
   interleaved step by step so that machine load hits both alike.
2. Sampling: ``storylab sample fashion-mnist``'s work - 100 images, its default sampler and steps, CFG - seconds per
   image and the share of the wall time spent inside the network.
3. Quality at training time (``--curve CKPT@MINUTES ...``): FID at the best of a few mean scales and
   adherence at scale 3 for each checkpoint, against the class-balanced real-vs-real floor at the same n,
   and the feature network's accuracy on real test images (the adherence ceiling).

Usage: python bench/images_fashion_budgets.py [--steps 6] [--skip-throughput] [--skip-sampling]
       [--curve PATH@MIN ...] [--per-class 50] [--sample-steps 25] [--scales 1,1.5,2,3] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from storylab.images.assets import shipped
from storylab.images.defaults import DEFAULT_SAMPLE_STEPS, DEFAULT_SAMPLER
from storylab.images.networks.denoiser import DigitDiffusion, DigitDiffusionConfig, load_digit_model, sample_digits
from storylab.images.networks.unet import UNetConfig


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def diffusers_unet(target: int):
    """A class-conditional UNet2DModel (3 levels like ours, attention at the lowest) of about ``target`` parameters."""
    from diffusers import UNet2DModel

    best = None
    for width in range(16, 97, 4):
        net = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1,
                          block_out_channels=(width, 2 * width, 2 * width), norm_num_groups=4,
                          down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                          up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"), num_class_embeds=11)
        gap = abs(_params(net) - target)
        if best is None or gap < best[0]:
            best = (gap, net)
    return best[1]


def throughput(channels: int, steps: int, batch: int) -> dict[str, float]:
    ours = DigitDiffusion(DigitDiffusionConfig(unet=UNetConfig(channels=channels), image_size=28, data="fashion-mnist"))
    theirs = diffusers_unet(_params(ours.unet))
    nets = {"storylab UNet": ours.unet, "diffusers UNet2DModel": theirs}
    opts = {k: torch.optim.AdamW(v.parameters(), 1e-4) for k, v in nets.items()}
    spent = {k: 0.0 for k in nets}
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    t = torch.randint(0, 1000, (batch,))
    for step in range(steps + 1):
        for name, net in nets.items():
            t0 = time.perf_counter()
            out = net(x, t, y) if name == "storylab UNet" else net(x, t, class_labels=y).sample
            loss = out.square().mean()
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if step:  # the first step warms up both
                spent[name] += time.perf_counter() - t0
    return {name: {"params": _params(net), "images_per_s": steps * batch / spent[name]} for name, net in nets.items()}


def sampling(checkpoint, n: int = 100, steps: int = DEFAULT_SAMPLE_STEPS) -> dict[str, float]:
    from foundation_digits import timed_denoiser  # the sibling bench script (bench/ is on sys.path when run)

    model = load_digit_model(checkpoint)
    denoiser, inside = timed_denoiser(model)
    labels = torch.arange(model.num_classes).repeat_interleave(n // model.num_classes)
    t0 = time.perf_counter()
    with torch.no_grad():
        sample_digits(model, labels, "cfg", 3.0, "constant", DEFAULT_SAMPLER, steps, 0, denoiser=denoiser)
    wall = time.perf_counter() - t0
    return {"s_per_image": wall / labels.shape[0], "network_share": inside["s"] / wall, "wall_s": wall}


def curve(points: list[str], per_class: int, steps: int, scales: list[float], batch_size: int) -> None:
    from storylab.images.data.datasets import load_split
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference, sample_cell, score_samples
    from storylab.metrics import adherence

    net = load_digit_feature_net(data="fashion-mnist")
    labels = torch.arange(10).repeat_interleave(per_class)
    ref = real_reference(net, labels.shape[0], data="fashion-mnist")
    try:
        test = load_split("fashion-mnist", "test")
        print(f"feature net accuracy on real test images (adherence ceiling): {adherence(net, test.images, test.labels):.3f}")
    except Exception as exc:  # noqa: BLE001 - the data package may be absent; the curve still runs
        print(f"(no real test images: {exc})")
    print(f"real-vs-real floor at n = {ref['n_floor']}: FID {ref['floor']['fid']:.3f} ± {ref['floor']['fid_std']:.3f}")
    print(f"n = {labels.shape[0]}, {steps} steps of the default sampler ({DEFAULT_SAMPLER}), constant CFG at scales {', '.join(f'{s:g}' for s in scales)}")
    print("minutes  best-scale  FID@best  FID/floor  adherence@3" + "".join(f"  FID@{s:g}" for s in scales))
    for point in points:
        path, minutes = point.rsplit("@", 1)
        model = load_digit_model(path)
        scores = {s: score_samples(sample_cell(model, labels, "cfg", s, "constant", steps, 0, batch_size)[0], labels,
                                   net, ref["test_feats"], ref["stats"]) for s in scales}
        best = min(scores, key=lambda s: scores[s]["fid"])
        at3 = f"{scores[3.0]['adherence']:11.3f}" if 3.0 in scores else f"{'-':>11s}"
        print(f"{float(minutes):7.1f}  {best:10g}  {scores[best]['fid']:8.3f}  {scores[best]['fid'] / ref['floor']['fid']:9.2f}"
              f"  {at3}" + "".join(f"  {scores[s]['fid']:6.1f}" for s in scales), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed training steps per network")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=32, help="our UNet's width (the diffusers one is matched)")
    parser.add_argument("--checkpoint", default=str(shipped("fashion-mnist", "denoiser")))
    parser.add_argument("--skip-throughput", action="store_true", help="skip the training-throughput comparison")
    parser.add_argument("--skip-sampling", action="store_true")
    parser.add_argument("--curve", nargs="*", default=[], help="CHECKPOINT@MINUTES points of the quality curve")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--sample-steps", type=int, default=25)
    parser.add_argument("--scales", default="1,1.5,2,3", help="comma-separated constant CFG scales of the curve")
    parser.add_argument("--batch-size", type=int, default=64, help="sampling batch of the curve")
    args = parser.parse_args()
    torch.manual_seed(0)
    if not args.skip_throughput:
        rows = throughput(args.channels, args.steps, args.batch)
        for name, row in rows.items():
            print(f"{name:24s} {row['params'] / 1e6:5.2f} M params  {row['images_per_s']:7.1f} training images/s")
        a, b = (r["images_per_s"] for r in rows.values())
        print(f"ratio storylab / diffusers: {a / b:.2f}")
    if not args.skip_sampling:
        s = sampling(args.checkpoint)
        print(f"sample 100 images, {DEFAULT_SAMPLE_STEPS} {DEFAULT_SAMPLER.upper()} steps, CFG: {s['s_per_image']:.3f} s/image ({s['wall_s']:.1f} s), "
              f"network share {s['network_share']:.3f}")
    if args.curve:
        curve(args.curve, args.per_class, args.sample_steps, [float(x) for x in args.scales.split(",")], args.batch_size)


if __name__ == "__main__":
    main()
