"""FunnyNet-W's modality encoders: audio (BYOL-A design), visual (frame CNN or a transformers video model), text.

FunnyNet-W (Liu, Courant, Kalogeiton, IJCV 2024) uses frozen BYOL-A for audio, VideoMAE for frames and
a language model's token states followed by an LSTM for text. Here the audio encoder has BYOL-A's
design (three conv blocks over a 64-band log-mel, a per-frame MLP, max + mean pooling over time) and is
trained with the head by default, or loaded frozen from a BYOL-A checkpoint; the visual encoder is a
small frame CNN by default or any local transformers video model (e.g. VideoMAE); the text branch is
an LSTM over the token states of the offline sentence encoder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from storylab.errors import StorylabError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ByolAudioEncoder(nn.Module):
    """BYOL-A's audio encoder design (Niizumi et al. 2021): conv blocks on log-mel, frame MLP, max + mean over time."""

    def __init__(self, n_mels: int = 64, dim: int = 2048, channels: int = 64, dropout: float = 0.3,
                 tail: float = 0.0) -> None:
        super().__init__()
        self.tail = tail  # > 0: also average the last ``tail`` share of time (where a punchline sits)
        if n_mels % 8:
            raise StorylabError(f"n_mels must be a multiple of 8 for the BYOL-A encoder, got {n_mels}")
        blocks: list[nn.Module] = []
        c_in = 1
        for _ in range(3):
            blocks += [nn.Conv2d(c_in, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = channels
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Linear(channels * (n_mels // 8), dim), nn.ReLU(), nn.Dropout(dropout),
                                nn.Linear(dim, dim), nn.ReLU())
        self.dim = dim * (2 if tail > 0 else 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) normalised log-mel -> (B, dim), or (B, 2 dim) with the tail average."""
        x = self.features(mel.unsqueeze(1))  # (B, C, F/8, T/8)
        x = x.permute(0, 3, 2, 1).flatten(2)  # (B, T/8, F/8 * C): BYOL-A's order, mel band major, channel minor
        x = self.fc(x)  # (B, T/8, dim)
        pooled = x.max(dim=1).values + x.mean(dim=1)  # BYOL-A's pooling
        if self.tail <= 0:
            return pooled
        k = max(1, int(round(self.tail * x.shape[1])))
        return torch.cat([pooled, x[:, -k:].mean(dim=1)], dim=-1)  # (B, 2 dim)

    @torch.no_grad()
    def embed_segments(self, segments: list[np.ndarray]) -> np.ndarray:
        """Embed audio segments (16 kHz mono) for laughter clustering, normalising log-mel by their joint statistics."""
        from storylab.humor.melspec import log_mel

        self.eval()
        mels = [log_mel(s) for s in segments]
        cat = torch.cat([m.flatten() for m in mels])
        mean, std = cat.mean(), cat.std() + 1e-6
        return torch.stack([self(((m - mean) / std)[None])[0] for m in mels]).numpy()


def channel_major_to_mel_major(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Reorder ``fc.0.weight`` columns from the (channel, mel) flatten order to BYOL-A's (mel, channel) order.

    Before issue 16 the encoder flattened the conv output channel-major; a network trained that way gives
    exactly the same outputs once its first fc layer's columns are permuted this way.
    """
    out_dim, flat = weight.shape
    bands = flat // channels
    return weight.view(out_dim, channels, bands).transpose(1, 2).reshape(out_dim, flat)


def load_byol_a(path: str | os.PathLike) -> ByolAudioEncoder:
    """Load a BYOL-A encoder from a local ``.pth`` state dict (the authors' format) or ``.safetensors``, frozen."""
    p = Path(path)
    if not p.is_file():
        raise StorylabError(f"audio encoder checkpoint not found: {p}")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(p))
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise StorylabError(f"unreadable audio encoder checkpoint {p.name} ({type(exc).__name__})") from exc
    state = {k.removeprefix("module."): v for k, v in state.items()}
    from storylab.training.checkpoint import check_finite

    check_finite({k: v for k, v in state.items() if isinstance(v, torch.Tensor)}, p.name)
    if "fc.0.weight" not in state or "features.0.weight" not in state:
        raise StorylabError(f"{p.name} is not a BYOL-A encoder (no features.* / fc.* weights)")
    dim, flat = state["fc.0.weight"].shape
    channels = state["features.0.weight"].shape[0]
    model = ByolAudioEncoder(n_mels=flat // channels * 8, dim=dim, channels=channels)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


class FrameCNN(nn.Module):
    """A small per-frame CNN, mean + max pooled over time: FunnyNet-W's visual branch at a CPU size."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128), dim: int = 256, tail: float = 0.25) -> None:
        super().__init__()
        self.tail = tail  # > 0: also average the last ``tail`` share of frames
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, dim), nn.ReLU())
        self.dim = dim * (2 if tail > 0 else 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) frames in [0, 1] -> (B, dim), or (B, 2 dim) with the tail average."""
        b, t = frames.shape[:2]
        mean = frames.new_tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1)
        std = frames.new_tensor(IMAGENET_STD).view(1, 1, 3, 1, 1)
        x = self.net(((frames - mean) / std).flatten(0, 1)).view(b, t, -1)  # (B, T, dim)
        pooled = x.mean(dim=1) + x.max(dim=1).values
        if self.tail <= 0:
            return pooled
        k = max(1, int(round(self.tail * t)))
        return torch.cat([pooled, x[:, -k:].mean(dim=1)], dim=-1)  # (B, 2 dim)


class TransformersVideoEncoder(nn.Module):
    """A frozen transformers video model (e.g. VideoMAE) from a local folder: mean of tokens + first token."""

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModel

        folder = Path(path)
        if not (folder / "config.json").exists():
            raise StorylabError(f"video model folder not found or has no config.json: {folder}")
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).eval().requires_grad_(False)
        self.num_frames = int(getattr(config, "num_frames", 16))
        self.image_size = int(getattr(config, "image_size", 224))
        self.dim = 2 * int(config.hidden_size)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        proc = folder / "preprocessor_config.json"
        if proc.exists():
            import json
            cfg = json.loads(proc.read_text())
            mean, std = tuple(cfg.get("image_mean", mean)), tuple(cfg.get("image_std", std))
        self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> "TransformersVideoEncoder":
        """Stay in eval mode: the video model is frozen."""
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) frames in [0, 1] (divided by 255 once, at decoding) -> (B, 2 * hidden)."""
        x = (frames - self.mean) / self.std
        tokens = self.model(pixel_values=x).last_hidden_state  # (B, N, hidden)
        return torch.cat([tokens.mean(dim=1), tokens[:, 0]], dim=-1)


class TextLSTM(nn.Module):
    """FunnyNet-W's text branch: an LSTM over the language model's token states.

    By default the last real state comes out; ``all_states=L`` follows the official code instead: the
    LSTM runs over all L token states (padding included) and every output is flattened, (B, L * hidden).
    """

    def __init__(self, in_dim: int = 384, hidden: int = 256, all_states: int = 0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.all_states = all_states
        self.dim = hidden * all_states if all_states else hidden

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, in_dim) token states with (B, L) mask -> (B, hidden), or (B, L * hidden) with ``all_states``."""
        if self.all_states:
            if states.shape[1] != self.all_states:
                raise StorylabError(f"the text branch expects {self.all_states} token states, got {states.shape[1]}")
            out, _ = self.lstm(states)  # (B, L, hidden)
            return out.flatten(1)
        lengths = mask.sum(dim=1).clamp_min(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(states, lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return h[-1]
