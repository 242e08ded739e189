"""Bench: character-aware following - does the camera's lateral motion follow the character's when the caption ties them?

E.T.'s captions tie the camera to the character with "while"/"as" ("The camera trucks right while the
character walks right"; Courant et al., ECCV 2024, Sec. 3). For every test caption in which a lateral
camera motion (truck left/right) goes with the character moving the same way, and for the example caption
above with a character walking right at 1.2 m/s for 6 s, the bench prints the mean over the clip of
|(x_cam(t) - x_cam(0)) - (x_char(t) - x_char(0))| (world x, metres): 0 when the camera keeps pace, the
character's own travel when it does not move. The reference trajectories give the floor.

    .venv/bin/python bench/camera_following.py --data DIR --checkpoint A.safetensors --checkpoint B.safetensors
"""

from __future__ import annotations

import argparse
import re

import numpy as np


def lateral_gap(poses: np.ndarray, char: np.ndarray) -> float:
    """Mean |lateral displacement of the camera - that of the character| over the clip (metres)."""
    cam = poses[:, 0, 3] - poses[0, 0, 3]
    ch = char[:, 0] - char[0, 0]
    return float(np.mean(np.abs(cam - ch)))


def tied_lateral(caption: str) -> bool:
    """A clause 'trucks right ... while/as the character moves right' (either side, the same direction)."""
    from storylab.camera.captions import CAMERA_PHRASES, CHARACTER_PHRASES

    for side in ("right", "left"):
        cam = "|".join(re.escape(p) for p in CAMERA_PHRASES[f"trucking_{side}"])
        ch = "|".join(re.escape(p) for p in CHARACTER_PHRASES[f"move_{side}"])
        if re.search(rf"({cam})[^,]*?(while|as) the character ({ch})", caption):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="E.T.-format folder with a test split")
    parser.add_argument("--checkpoint", action="append", required=True, help="DIRECTOR checkpoints (repeatable)")
    parser.add_argument("--guidance-scale", type=float, default=1.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from storylab.camera.data import attach_text, load_samples
    from storylab.camera.et_format import read_sample
    from storylab.camera.features import decode_camera
    from storylab.camera.generate import TrajectoryGenerator, character_motion
    from storylab.camera.sampling import SamplingConfig, generate_split
    from storylab.camera.training import load_director
    from storylab.text_encoder import SentenceEncoder

    test = load_samples(args.data, part="test", progress=False)
    idx = [i for i, c in enumerate(test.captions) if tied_lateral(c)]
    print(f"{len(idx)} of {len(test)} test captions tie a lateral camera motion to the character's")
    test = attach_text(test, SentenceEncoder(), args.data, True, False)
    chars = [read_sample(args.data, test.ids[i]).char_positions for i in idx]
    ref = [lateral_gap(decode_camera(test.x[i][test.mask[i]].double().numpy()), c) for i, c in zip(idx, chars)]
    travel = [float(np.mean(np.abs(c[:, 0] - c[0, 0]))) for c in chars]
    print(f"{'model':40s} {'test: mean gap (m)':>20s} {'example: gap (m)':>18s} {'example: x_cam, x_char at the end':>36s}")
    print(f"{'reference trajectories':40s} {np.mean(ref):20.3f}")
    print(f"{'a camera that does not move':40s} {np.mean(travel):20.3f}")
    caption = "The camera trucks right while the character walks right."
    walk = character_motion("right", 150)
    for path in args.checkpoint:
        net, _ = load_director(path)
        feats = generate_split(net, test, SamplingConfig(guidance_scale=args.guidance_scale), seed=args.seed, indices=idx)
        gaps = [lateral_gap(decode_camera(f), c) for f, c in zip(feats, chars)]
        gen = TrajectoryGenerator(path)(caption, walk, guidance_scale=args.guidance_scale, seed=args.seed)
        example = lateral_gap(gen.kitti_poses, walk)
        end = gen.kitti_poses[-1, 0, 3] - gen.kitti_poses[0, 0, 3]
        name = f"{net.cfg.arch}{' two-stage' if net.cfg.two_stage else ''} ({path.split('/')[-1]})"
        print(f"{name:40s} {np.mean(gaps):20.3f} {example:18.3f} {end:20.2f}, {walk[-1, 0]:.2f}")


if __name__ == "__main__":
    main()
