"""Benchmark: E.T. motion tagging throughput on one core (budget: >= 25,000 frames/s = 1,000x real time at 25 fps).

Run: .venv/bin/python bench/camera_tagging.py [--n 200]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200, help="number of synthetic trajectories (default 200)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from storylab.camera.synth import synth_sample
    from storylab.camera.tagging import tag_camera, tag_character

    rng = np.random.default_rng(0)
    samples = [synth_sample(f"b{i}", rng) for i in range(args.n)]
    frames = sum(s.n_frames for s in samples)
    for s in samples[:5]:  # warm-up
        tag_camera(s.kitti_poses)
    t0 = time.perf_counter()
    for s in samples:
        tag_camera(s.kitti_poses)
    cam = time.perf_counter() - t0
    t0 = time.perf_counter()
    for s in samples:
        tag_character(s.char_positions)
    char = time.perf_counter() - t0
    print(f"{args.n} trajectories, {frames} frames ({frames / 25:.0f} s of video at 25 fps), one core")
    print(f"camera tagging:    {frames / cam:10.0f} frames/s = {frames / cam / 25:8.0f}x real time "
          f"({frames / cam / 25000:.1f}x the 25,000 frames/s budget)")
    print(f"character tagging: {frames / char:10.0f} frames/s = {frames / char / 25:8.0f}x real time")
    print(f"load average during the run: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
