"""One caption (and a character path) -> one camera trajectory, with the shipped DIRECTOR checkpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from storylab.camera.constants import FPS
from storylab.camera.et_format import check_caption, validate_char
from storylab.camera.features import decode_camera, encode_character
from storylab.errors import StorylabError

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "camera"
CHAR_MOTIONS = {"static": (0, 0, 0), "right": (1, 0, 0), "left": (-1, 0, 0), "forward": (0, 0, 1),
                "backward": (0, 0, -1), "up": (0, -1, 0), "down": (0, 1, 0)}


SHIPPED = ("twostage", "incontext", "adaln", "crossattn")


def shipped_checkpoint(arch: str = "crossattn") -> Path:
    """Path of the shipped tiny checkpoint of a DIRECTOR config (``twostage``: the motion planner + config C
    on camera-frame motion; ``incontext``/``adaln``/``crossattn``: the paper's configs A/B/C)."""
    path = ASSETS / f"director_{arch}_tiny.safetensors"
    if not path.exists():
        raise StorylabError(f"no shipped checkpoint for config '{arch}' ({path}); pass --checkpoint")
    return path


def character_motion(motion: str, n_frames: int, speed: float = 1.2, fps: int = FPS) -> np.ndarray:
    """A character path starting at the origin and moving in one direction at ``speed`` m/s (or standing)."""
    if motion not in CHAR_MOTIONS:
        raise StorylabError(f"unknown character motion '{motion}' (choose from {', '.join(CHAR_MOTIONS)})")
    if n_frames < 2:
        raise StorylabError(f"--frames must be at least 2, got {n_frames}")
    direction = np.asarray(CHAR_MOTIONS[motion], dtype=float)
    return np.arange(n_frames)[:, None] * direction * speed / fps


@dataclass
class Generation:
    """A generated trajectory and where the time went."""

    kitti_poses: np.ndarray
    char_positions: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class TrajectoryGenerator:
    """A loaded DIRECTOR network and text encoder, ready to turn captions into camera paths."""

    def __init__(self, checkpoint: str | Path, text_encoder: str | None = None) -> None:
        from storylab.camera.training import load_director
        from storylab.text_encoder import SentenceEncoder

        t0 = time.perf_counter()
        self.net, self.extra = load_director(checkpoint)
        path = text_encoder or self.net.cfg.text_encoder
        self.encoder = SentenceEncoder(path)
        if self.encoder.dim != self.net.cfg.text_dim:
            raise StorylabError(f"text encoder width {self.encoder.dim} does not match the checkpoint's "
                                f"{self.net.cfg.text_dim} (trained with {self.net.cfg.text_encoder or 'all-MiniLM-L6-v2'})")
        self.load_seconds = time.perf_counter() - t0

    def condition(self, caption: str, char_features: np.ndarray) -> dict[str, torch.Tensor]:
        """The condition dict of one caption and (n, 3) character features."""
        from storylab.camera.data import caption_vectors

        n = len(char_features)
        cond = {"char": torch.from_numpy(char_features).float()[None], "mask": torch.ones(1, n, dtype=torch.bool)}
        if self.net.cfg.arch == "crossattn":
            ts = self.encoder.token_states([caption])
            n_tok = int(ts.mask.sum())
            cond["text_tokens"] = (ts.states * ts.mask[..., None])[:, :n_tok]
            cond["text_mask"] = ts.mask[:, :n_tok].float()
            cond["text"] = torch.zeros(1, self.net.cfg.text_dim)
        else:
            cond["text"] = caption_vectors(self.encoder, [caption])
            cond["text_tokens"] = torch.zeros(1, 1, self.net.cfg.text_dim)
            cond["text_mask"] = torch.zeros(1, 1)
        return cond

    def __call__(self, caption: str, char_positions: np.ndarray, guidance_scale: float = 1.4,
                 schedule: str = "constant", seed: int = 0, steps: int = 10) -> Generation:
        from storylab.camera.sampling import SamplingConfig, sample_trajectories

        caption = check_caption(caption)
        char = validate_char(char_positions)
        if len(char) > self.net.cfg.max_frames:
            raise StorylabError(f"{len(char)} frames is more than the model's maximum of {self.net.cfg.max_frames}")
        t0 = time.perf_counter()
        cond = self.condition(caption, encode_character(char))
        t1 = time.perf_counter()
        feats = sample_trajectories(self.net, cond, len(char), SamplingConfig(steps=steps, guidance_scale=guidance_scale,
                                                                               schedule=schedule), seed)
        t2 = time.perf_counter()
        poses = decode_camera(feats[0].double().numpy())
        return Generation(poses, char, {"load": self.load_seconds, "encode": t1 - t0, "sample": t2 - t1})
