"""A synthetic E.T.-format data set: a walking character and a camera doing 1-3 film primitives.

Each sample lasts 2-12 s at 25 fps. The character (hip centre, starting at the origin as in E.T.)
stands, walks left/right/forward/backward or turns along an arc at 0.8-1.6 m/s with smooth
accelerations. The camera starts 2-5 m in front of it looking at it (OpenCV axes: x right, y down,
z forward) and performs one to three primitives in sequence - static, truck, push/pull, boom,
follow the character, orbit-like arc - at realistic speeds with smoothstep transitions, plus small
hand-held noise (mostly rotational, well below the static threshold in translation).

The *labels are not the generator's*: segments and captions come from running the real tagging
(:mod:`storylab.camera.tagging`) and captioning on the generated poses, exactly as E.T. derives them
from real footage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.spatial.transform import Rotation

from storylab.camera.captions import Captioner, TemplateCaptioner
from storylab.camera.constants import FPS, MAX_FRAMES
from storylab.camera.et_format import ETSample
from storylab.camera.tagging import tag_camera, tag_character

CAMERA_PRIMITIVES = ("static", "truck", "push", "boom", "follow", "orbit")
CHARACTER_MOTIONS = ("static", "left", "right", "forward", "backward", "turn")


@dataclass
class SynthConfig:
    """Ranges of the synthetic generator (seconds, metres, metres per second)."""

    min_seconds: float = 2.0
    max_seconds: float = 12.0
    fps: int = FPS
    walk_speed: tuple[float, float] = (0.8, 1.6)
    truck_speed: tuple[float, float] = (0.4, 1.2)
    push_speed: tuple[float, float] = (0.4, 1.0)
    boom_speed: tuple[float, float] = (0.25, 0.6)
    orbit_deg_per_s: tuple[float, float] = (12.0, 30.0)
    distance: tuple[float, float] = (2.0, 5.0)
    min_primitive_seconds: float = 1.6
    handheld_degrees: float = 0.3
    handheld_metres: float = 0.0004
    # pinhole intrinsics (fx, fy, cx, cy) of the synthetic camera: a 1920x1080 frame with a 54 degree
    # horizontal field of view; written to intrinsics/ as the release does, not used by the generator
    intrinsics: tuple[float, float, float, float] = (1884.0, 1884.0, 960.0, 540.0)


def smooth_profile(n: int, spans: list[tuple[int, int]], ramp: int) -> list[np.ndarray]:
    """Per-span weights in [0, 1] over n frames with smoothstep ramps at the span boundaries."""
    t = np.arange(n)
    out = []
    for start, end in spans:
        up = np.clip((t - start + ramp / 2) / ramp, 0, 1)
        down = np.clip((end - t + ramp / 2) / ramp, 0, 1) if end < n else np.ones(n)
        w = np.minimum(up, down) if start > 0 else down
        out.append(w * w * (3 - 2 * w))
    return out


def look_at(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes) looking from ``position`` at ``target``, no roll."""
    z = target - position
    z = z / np.linalg.norm(z)
    x = np.cross(np.array([0.0, 1.0, 0.0]), z)  # world y is down
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def character_path(motion: str, n: int, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) hip positions for one character motion, starting at the origin, with smooth starts/stops."""
    speed = rng.uniform(*cfg.walk_speed) / cfg.fps
    direction = {"left": (-1, 0, 0), "right": (1, 0, 0), "forward": (0, 0, 1), "backward": (0, 0, -1)}
    vel = np.zeros((n, 3))
    if motion in direction:
        vel[:] = np.asarray(direction[motion], dtype=float) * speed
    elif motion == "turn":
        heading0 = rng.uniform(0, 2 * np.pi)
        turn_rate = rng.choice([-1, 1]) * np.deg2rad(rng.uniform(20, 45)) / cfg.fps
        heading = heading0 + turn_rate * np.arange(n)
        vel[:, 0], vel[:, 2] = np.cos(heading) * speed, np.sin(heading) * speed
    if motion != "static":
        start = int(rng.integers(0, max(1, n // 3)))
        stop = n if rng.random() < 0.6 else int(rng.integers(start + n // 3, n + 1))
        vel *= smooth_profile(n, [(start, stop)], ramp=int(0.6 * cfg.fps))[0][:, None]
    vel[:, 1] += gaussian_filter1d(rng.normal(0, 0.002, n), 3)  # gait bob
    pos = np.cumsum(vel, axis=0)
    return pos - pos[0]


def _spans(n: int, k: int, cfg: SynthConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    min_len = int(cfg.min_primitive_seconds * cfg.fps)
    k = max(1, min(k, n // min_len))
    cuts = np.sort(rng.choice(np.arange(1, n - (k - 1) * min_len + 1), size=k - 1, replace=False)) if k > 1 else []
    bounds = [0] + [int(c) + i * min_len for i, c in enumerate(cuts)] + [n]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


def camera_path(primitives: list[str], char: np.ndarray, cfg: SynthConfig,
                rng: np.random.Generator) -> np.ndarray:
    """(n, 4, 4) camera-to-world poses performing ``primitives`` in sequence around the character."""
    n = len(char)
    target = char[0] + np.array([0.0, rng.uniform(-0.3, 0.1), 0.0])
    dist = rng.uniform(*cfg.distance)
    yaw0 = np.deg2rad(rng.uniform(-35, 35))
    position = target + dist * np.array([np.sin(yaw0), 0, -np.cos(yaw0)]) + np.array([0, rng.uniform(-0.6, 0.2), 0])
    rotation = look_at(position, target)
    spans = _spans(n, len(primitives), cfg, rng)
    weights = smooth_profile(n, spans, ramp=int(0.5 * cfg.fps))
    params = []
    for prim in primitives:
        sign = rng.choice([-1.0, 1.0])
        speed = {"truck": cfg.truck_speed, "push": cfg.push_speed, "boom": cfg.boom_speed}.get(prim, (0, 0))
        params.append((sign, rng.uniform(*speed) / cfg.fps if prim in ("truck", "push", "boom") else 0.0,
                       np.deg2rad(rng.uniform(*cfg.orbit_deg_per_s)) / cfg.fps * sign))
    char_vel = np.vstack([np.diff(char, axis=0), np.zeros((1, 3))])
    poses = np.tile(np.eye(4), (n, 1, 1))
    yaw_total = 0.0
    for t in range(n):
        poses[t, :3, :3], poses[t, :3, 3] = rotation, position
        step = np.zeros(3)
        turn = 0.0
        for prim, w, (sign, speed, omega) in zip(primitives, weights, params):
            if w[t] <= 0:
                continue
            if prim in ("truck", "push", "boom"):
                axis = {"truck": 0, "boom": 1, "push": 2}[prim]
                step += w[t] * rotation[:, axis] * sign * speed
            elif prim == "follow":
                step += w[t] * char_vel[t]
            elif prim == "orbit":
                turn += w[t] * omega
        if turn:
            centre = char[t] + np.array([0.0, position[1] - char[t, 1], 0.0])
            spin = Rotation.from_rotvec([0.0, -turn, 0.0]).as_matrix()
            step += spin @ (position - centre) + centre - position
            rotation = spin @ rotation
            yaw_total += turn
        position = position + step
    # hand-held noise: smooth rotational jitter and sub-threshold translational jitter
    jitter = gaussian_filter1d(rng.normal(0, 1, (n, 3)), 4, axis=0)
    jitter *= np.deg2rad(cfg.handheld_degrees) / max(jitter.std(), 1e-9)
    poses[:, :3, :3] = Rotation.from_rotvec(jitter).as_matrix() @ poses[:, :3, :3]
    shake = gaussian_filter1d(rng.normal(0, 1, (n, 3)), 6, axis=0)
    poses[:, :3, 3] += shake * cfg.handheld_metres / max(shake.std(), 1e-9)
    return poses


def synth_sample(sample_id: str, rng: np.random.Generator, cfg: SynthConfig | None = None,
                 captioner: Captioner | None = None) -> ETSample:
    """One synthetic sample, tagged and captioned by the real pipeline."""
    cfg = cfg or SynthConfig()
    captioner = captioner or TemplateCaptioner()
    n = min(MAX_FRAMES, int(round(rng.uniform(cfg.min_seconds, cfg.max_seconds) * cfg.fps)))
    motion = CHARACTER_MOTIONS[int(rng.integers(len(CHARACTER_MOTIONS)))]
    char = character_path(motion, n, cfg, rng)
    k = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    primitives = [CAMERA_PRIMITIVES[int(i)] for i in rng.integers(len(CAMERA_PRIMITIVES), size=k)]
    poses = camera_path(primitives, char, cfg, rng)
    cam_tags, char_tags = tag_camera(poses, cfg.fps), tag_character(char, cfg.fps)
    return ETSample(sample_id=sample_id, kitti_poses=poses, char_positions=char,
                    caption=captioner.caption(cam_tags, char_tags), caption_cam=captioner.caption(cam_tags),
                    cam_segments=cam_tags.frames, char_segments=char_tags.frames,
                    intrinsics=np.asarray(cfg.intrinsics, dtype=np.float32))


def is_pure(cam_segments: np.ndarray) -> bool:
    """E.T.'s ``pure`` subset holds only simple camera motions: no tag moves along more than one axis."""
    labels = np.asarray(cam_segments)
    axes = (labels // 9 > 0).astype(int) + ((labels // 3) % 3 > 0) + (labels % 3 > 0)
    return bool((axes <= 1).all())


def write_synth_dataset(out: str, n: int, seed: int = 0, test_fraction: float = 0.1, cfg: SynthConfig | None = None,
                        captioner: Captioner | None = None, progress: bool = True) -> dict[str, list[str]]:
    """Write ``n`` synthetic samples under ``out`` as the E.T. release lays them out, with mixed_{train,test}
    splits (every sample) and pure_{train,test} splits (the samples of simple camera motions)."""
    from storylab.camera.et_format import write_sample, write_split
    from storylab.errors import StorylabError
    from storylab.training.progress import progress_bar

    if n < 2:
        raise StorylabError(f"--n must be at least 2 (one train and one test sample), got {n}")
    if not 0 < test_fraction < 1:
        raise StorylabError(f"test fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    ids = [f"2024_synth{seed:04d}_{i:05d}_00000" for i in range(n)]
    pure = set()
    with progress_bar("synthesising trajectories", total=n, enabled=progress) as bar:
        for sid in ids:
            sample = synth_sample(sid, rng, cfg, captioner)
            write_sample(out, sample)
            if is_pure(sample.cam_segments):
                pure.add(sid)
            bar.advance()
    n_test = max(1, int(round(n * test_fraction)))
    splits = {"train": ids[:-n_test], "test": ids[-n_test:]}
    for part, part_ids in splits.items():
        write_split(out, part_ids, "mixed", part)
    pure_splits = {part: [i for i in part_ids if i in pure] for part, part_ids in splits.items()}
    if all(pure_splits.values()):  # an empty split file would not load
        for part, part_ids in pure_splits.items():
            write_split(out, part_ids, "pure", part)
    return splits
