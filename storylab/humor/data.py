"""Clip inputs for FunnyNet-W: laughter-silenced log-mel audio, sampled frames and subtitle token states.

FunnyNet-W (Liu et al., IJCV 2024) cuts each N-second clip into its audio, its frames and its text; the
laughter is replaced by silence of the same length before cutting, so the model never hears the answer.
Frames are decoded once per file at the clip's frame rate and divided by 255 exactly once (the public
code's double division is a known bug not reproduced here).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from storylab.errors import StorylabError
from storylab.humor.media import SAMPLE_RATE, load_audio, load_frames
from storylab.humor.melspec import MelConfig, frames_for, log_mel
from storylab.humor.config import FunnyNetConfig
from storylab.humor.labels import safe_clip_file
from storylab.io import atomic_write_json


def silence_laughter(audio: np.ndarray, laughter: Sequence[tuple[float, float]], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Replace every laughter interval by silence of the same length (FunnyNet-W), returning a copy."""
    out = np.array(audio, dtype=np.float32, copy=True)
    for s, e in laughter:
        out[..., max(0, int(s * sample_rate)):max(0, int(e * sample_rate))] = 0.0
    return out


def visual_spec(config: FunnyNetConfig) -> tuple[int, int]:
    """(frames per clip, frame size) the visual encoder expects."""
    if config.video_encoder:
        from transformers import AutoConfig
        cfg = AutoConfig.from_pretrained(config.video_encoder, local_files_only=True)
        return int(getattr(cfg, "num_frames", config.frames)), int(getattr(cfg, "image_size", 224))
    return config.frames, config.frame_size


def write_laughter_json(path: str | os.PathLike, results, names: bool = False) -> Path:
    """Save laughter detections as ``{"files": [{"path", "laughter": [{"start", "end"}]}]}``.

    ``names=True`` (next to a clips table) writes each file's name, read back relative to the JSON's folder.
    """
    files = [r.to_json() for r in results]
    if names:
        files = [{**f, "path": Path(f["path"]).name} for f in files]
    return atomic_write_json(path, {"files": files})


def read_laughter_json(path: str | os.PathLike) -> dict[str, list[tuple[float, float]]]:
    """Read a laughter JSON written next to a clips table into {file path: intervals} (names inside its folder)."""
    p = Path(path)
    if not p.exists():
        raise StorylabError(f"laughter file not found: {p} (storylab humor label writes it next to the clips table)")
    try:
        data = json.loads(p.read_text())
        return {str(safe_clip_file(f["path"], p.parent, f"file in {p.name}")): [(float(x["start"]), float(x["end"]))
                                                                               for x in f["laughter"]]
                for f in data["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise StorylabError(f"{p.name} is not a laughter file (expected {{\"files\": [{{\"path\", \"laughter\"}}]}})") from exc


@dataclass
class ClipInputs:
    """Model inputs for N clips (only the modalities asked for are filled)."""

    label: torch.Tensor                 # (N,) long
    audio: torch.Tensor | None = None   # (N, n_mels, T) log-mel, unnormalised
    frames: torch.Tensor | None = None  # (N, F, 3, S, S) uint8
    text: torch.Tensor | None = None    # (N, L, D) float
    text_mask: torch.Tensor | None = None  # (N, L) bool

    def __len__(self) -> int:
        return len(self.label)

    def batch(self, idx: torch.Tensor | slice) -> dict[str, torch.Tensor]:
        """A model batch; frames become floats in [0, 1] here, divided by 255 once."""
        out = {"label": self.label[idx]}
        if self.audio is not None:
            out["audio"] = self.audio[idx].float()
        if self.frames is not None:
            out["frames"] = self.frames[idx].float() / 255.0
        if self.text is not None:
            out["text"], out["text_mask"] = self.text[idx].float(), self.text_mask[idx]
        return out


@dataclass
class DecodedMedia:
    """One file decoded once for clip cutting: laughter-silenced mono audio and frames at the clip frame rate."""

    mono: np.ndarray | None      # (samples,) float32 at SAMPLE_RATE, laughter silenced
    frames: object | None        # storylab.humor.media.Frames at n_frames / window fps


def decode_media(file: str, config: FunnyNetConfig, laughter: Sequence[tuple[float, float]] = ()) -> DecodedMedia:
    """Decode the modalities ``config`` needs from ``file`` once (audio to silenced mono, frames at clip rate)."""
    mono = decoded = None
    if "a" in config.modalities:
        mono = silence_laughter(load_audio(file).mono(), laughter)  # the multichannel track is freed here
    if "v" in config.modalities:
        n_frames, size = visual_spec(config)
        decoded = load_frames(file, fps=n_frames / config.window, size=size)
    return DecodedMedia(mono, decoded)


def cut_clips(media: DecodedMedia, starts: Sequence[float], ends: Sequence[float], config: FunnyNetConfig
              ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(audio (N, n_mels, T) float16 log-mel, frames (N, F, 3, S, S) uint8) of clips of one decoded file."""
    n = len(ends)
    audio = frames = None
    if media.mono is not None:
        mel_cfg = MelConfig(n_mels=config.n_mels)
        n_time = frames_for(config.window, mel_cfg)
        win = int(round(config.window * SAMPLE_RATE))
        audio = torch.zeros(n, config.n_mels, n_time, dtype=torch.float16)
        for i in range(n):
            e = int(round(ends[i] * SAMPLE_RATE))
            seg = media.mono[max(0, e - win):e]
            seg = np.pad(seg, (win - len(seg), 0))  # clips clamped at 0 are padded on the left
            audio[i] = log_mel(seg, mel_cfg)[:, :n_time].half()
    if media.frames is not None:
        n_frames, size = visual_spec(config)
        decoded = media.frames
        frames = torch.zeros(n, n_frames, 3, size, size, dtype=torch.uint8)
        for i in range(n):
            want = np.linspace(starts[i], ends[i], n_frames, endpoint=False)
            pick = np.clip(np.searchsorted(decoded.times, want, side="right") - 1, 0, len(decoded.times) - 1)
            frames[i] = torch.from_numpy(decoded.images[pick]).permute(0, 3, 1, 2)
    return audio, frames


def text_states(texts: Sequence[str], config: FunnyNetConfig, encoder=None, chunk: int = 64
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Subtitle token states (N, L, D) float16 and mask (N, L), encoded ``chunk`` texts at a time."""
    if encoder is None:
        encoder = text_encoder_for(config)
    states, masks = [], []
    for s in range(0, len(texts), chunk):
        ts = encoder.token_states(list(texts[s:s + chunk]))
        states.append(ts.states.half())
        masks.append(ts.mask)
    if not states:
        return torch.zeros(0, config.text_tokens, config.text_dim), torch.zeros(0, config.text_tokens, dtype=torch.bool)
    return torch.cat(states), torch.cat(masks)


def text_encoder_for(config: FunnyNetConfig):
    """The sentence encoder whose token states the model's text branch reads, checked against its width."""
    from storylab.text_encoder import SentenceEncoder

    enc = SentenceEncoder(config.text_encoder, max_length=config.text_tokens)
    if enc.dim != config.text_dim:
        raise StorylabError(f"text encoder width {enc.dim} differs from the model's text_dim {config.text_dim}")
    return enc


def clip_inputs(files: Sequence[str], starts: Sequence[float], ends: Sequence[float], labels: Sequence[int],
                texts: Sequence[str], config: FunnyNetConfig, laughter: dict[str, list[tuple[float, float]]] | None = None,
                progress: bool = False) -> ClipInputs:
    """Cut every clip's inputs: laughter-silenced log-mel, ``frames`` frames, subtitle token states."""
    from storylab.training.progress import progress_bar

    mods = config.modalities
    n = len(files)
    n_time = frames_for(config.window, MelConfig(n_mels=config.n_mels))
    n_frames, size = visual_spec(config)
    audio = torch.zeros(n, config.n_mels, n_time, dtype=torch.float16) if "a" in mods else None
    frames = torch.zeros(n, n_frames, 3, size, size, dtype=torch.uint8) if "v" in mods else None
    by_file: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        by_file.setdefault(str(f), []).append(i)
    laughter = laughter or {}
    with progress_bar("cutting clips", total=len(by_file), enabled=progress) as bar:
        for f, idx in by_file.items():
            media = decode_media(f, config, laughter.get(f, []))
            a, v = cut_clips(media, [starts[i] for i in idx], [ends[i] for i in idx], config)
            del media
            if a is not None:
                audio[idx] = a
            if v is not None:
                frames[idx] = v
            bar.advance()
    text = mask = None
    if "t" in mods:
        text, mask = text_states(texts, config)
    return ClipInputs(label=torch.as_tensor(np.asarray(labels, dtype=np.int64)), audio=audio, frames=frames,
                      text=text, text_mask=mask)
