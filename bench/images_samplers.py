"""Samplers side by side on one denoiser and the same starting noise: FID, adherence, precision/recall and speckle.

Every sampler draws the same labels from the same seeds (batch k uses seed + k) with CFG at ``--cfg``; all are
scored with the data set's shipped feature network against the test split, with the class-balanced
real-vs-real floor at the same n. Speckle is measured directly: the share of spectral power above 0.25
cycles/pixel (:func:`storylab.metrics.spectrum.high_frequency_share`) as a ratio to the real test images'.

Usage: OMP_NUM_THREADS=1 python bench/images_samplers.py --checkpoint CKPT [--per-class 20] [--cfg 3]
       [--samplers ddpm:20,ddim:20,ddim-eta1:20,ddpm:50,edm-heun:10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from storylab.images.networks.denoiser import load_digit_model, sample_digits
from storylab.metrics.spectrum import high_frequency_share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--samplers", default="ddpm:20,ddim:20,ddim-eta1:20,ddpm:50,edm-heun:10")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from storylab.images.data.datasets import load_split
    from storylab.images.networks.feature_training import load_digit_feature_net
    from storylab.images.study.study import real_reference, score_samples

    torch.set_num_threads(1)
    model = load_digit_model(args.checkpoint)
    data = model.config.data
    feature_net = load_digit_feature_net(data=data)
    labels = torch.arange(model.num_classes).repeat_interleave(args.per_class)
    ref = real_reference(feature_net, labels.shape[0], 0, 10, data=data)
    real_hf = high_frequency_share(load_split(data, "test").images)
    rows = []
    for item in args.samplers.split(","):
        name, steps = item.split(":")
        sampler, eta = ("ddim", 1.0) if name == "ddim-eta1" else (name, 0.0)
        t0 = time.perf_counter()
        images = torch.cat([sample_digits(model, labels[i:i + args.batch_size], "cfg", args.cfg, "constant", sampler,
                                          int(steps), k, eta=eta)
                            for k, i in enumerate(range(0, labels.shape[0], args.batch_size))])
        seconds = time.perf_counter() - t0
        m = score_samples(images, labels, feature_net, ref["test_feats"], ref["stats"])
        hf = high_frequency_share(images)
        rows.append({"sampler": f"{name} {steps}", "fid": m["fid"], "adherence": m["adherence"],
                     "precision": m["precision"], "recall": m["recall"], "hf_ratio": hf / real_hf,
                     "s_per_image": seconds / labels.shape[0]})
        print(f"{name:>10} {steps:>3}  FID {m['fid']:7.2f}  adherence {m['adherence']:.3f}  precision "
              f"{m['precision']:.3f}  recall {m['recall']:.3f}  HF/real {hf / real_hf:5.2f}  "
              f"{seconds / labels.shape[0]:.3f} s/image", flush=True)
    floor = ref["floor"]
    print(f"n = {labels.shape[0]}, floor FID {floor['fid']:.2f} ± {floor['fid_std']:.2f}, CFG {args.cfg}, "
          f"real HF share {real_hf:.4f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"checkpoint": args.checkpoint, "n": int(labels.shape[0]), "floor": floor["fid"],
                       "floor_std": floor["fid_std"], "real_hf_share": real_hf, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
