"""Real-vs-real floor of the digit metrics, and how long each metric takes.

Prints the FID between the digits train and test splits (shipped feature network) at the sample
sizes a model is evaluated at, the precision/recall/density/coverage/Vendi of real-vs-real, and the
wall time of each metric, all measured in this one run. Run: ``.venv/bin/python bench/metrics_floor.py``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from storylab.images.data.digits import load_digits_split
from storylab.images.networks.feature_training import load_digit_feature_net
from storylab.metrics import (density_coverage, extract_features, frechet_distance, mean_pairwise_distance,
                              precision_recall, real_floor, vendi_score)
from storylab.metrics.distribution import draw_rows


def timed(fn, *args, **kwargs):
    """Call ``fn`` once and return (result, seconds)."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def main(repeats: int = 5) -> None:
    torch.set_num_threads(1)
    net = load_digit_feature_net()
    train, test = load_digits_split("train"), load_digits_split("test")
    f_train, t_feat = timed(extract_features, net, train.images)
    f_test = extract_features(net, test.images)
    f_train, f_test = f_train.double().numpy(), f_test.double().numpy()
    frechet_distance(f_train[:10], f_test[:10])  # warm-up: imports torchmetrics once
    print(f"feature extraction: {len(train)} images in {t_feat * 1000:.1f} ms; feature dim {f_train.shape[1]}")

    print("\nFID floor, train vs test split (mean +- std over draws)")
    modes = {None: "replacement only where a split is smaller than n", False: "no replacement",
             True: "both with replacement"}
    for n, replace in ((360, False), (360, True), (1000, None), (1000, True)):
        values = [real_floor(f_train, f_test, n, seed=s, replace=replace) for s in range(repeats)]
        print(f"  n={n:5d} ({modes[replace]}): {np.mean(values):7.3f} +- {np.std(values):.3f}  ({repeats} draws)")
    full, t_fid = timed(frechet_distance, f_train, f_test)
    print(f"  whole splits (1437 vs 360): {full:.3f}")

    print("\nreal-vs-real manifold metrics (real = train split, fake = test split)")
    rng = np.random.default_rng(0)
    sub = draw_rows(f_train, 360, rng, replace=False)
    for name, real in (("train 1437 vs test 360", f_train), ("train 360 vs test 360", sub)):
        (p, r), t_pr = timed(precision_recall, real, f_test, k=3)
        (d, c), t_dc = timed(density_coverage, real, f_test, k=5)
        print(f"  {name}: precision {p:.3f}  recall {r:.3f}  (k=3, {t_pr * 1000:.1f} ms)   "
              f"density {d:.3f}  coverage {c:.3f}  (k=5, {t_dc * 1000:.1f} ms)")

    v_test, t_v = timed(vendi_score, f_test)
    v_train = vendi_score(f_train)
    m_test, t_m = timed(mean_pairwise_distance, f_test)
    print(f"\ndiversity: Vendi test {v_test:.3f} ({t_v * 1000:.1f} ms), Vendi train {v_train:.3f}; "
          f"mean pairwise distance test {m_test:.3f} ({t_m * 1000:.1f} ms)")

    big_a, big_b = draw_rows(f_train, 5000, rng), draw_rows(f_test, 5000, rng)
    print("\nmetric wall time at 5000 vs 5000 (64-d features)")
    for label, fn in (("FID", lambda: frechet_distance(big_a, big_b)),
                      ("precision/recall k=3", lambda: precision_recall(big_a, big_b, k=3)),
                      ("density/coverage k=5", lambda: density_coverage(big_a, big_b, k=5)),
                      ("Vendi", lambda: vendi_score(big_b)),
                      ("mean pairwise distance", lambda: mean_pairwise_distance(big_b))):
        _, seconds = timed(fn)
        print(f"  {label:24s} {seconds * 1000:8.1f} ms")
    print(f"  (FID at 1437 vs 360: {t_fid * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
