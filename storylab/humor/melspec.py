"""Log-mel spectrograms, the audio front end of BYOL-A and of FunnyNet-W's audio branch.

BYOL-A (Niizumi et al., 2021), FunnyNet-W's audio encoder, reads a 64-band log-mel spectrogram of
16 kHz audio with a 64 ms window, 10 ms hop and 60-7800 Hz range; the same settings are used here.
The mel filter bank comes from ``transformers.audio_utils`` and the STFT from PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class MelConfig:
    """Log-mel settings (BYOL-A's defaults)."""

    sample_rate: int = 16_000
    n_fft: int = 1024
    hop: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0


@lru_cache(maxsize=8)
def _filters(config: MelConfig) -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(num_frequency_bins=config.n_fft // 2 + 1, num_mel_filters=config.n_mels,
                           min_frequency=config.f_min, max_frequency=config.f_max,
                           sampling_rate=config.sample_rate, norm="slaney", mel_scale="slaney")
    return torch.from_numpy(bank.T.astype(np.float32))  # (n_mels, freq)


@lru_cache(maxsize=8)
def _window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)


def log_mel(audio: np.ndarray | torch.Tensor, config: MelConfig = MelConfig()) -> torch.Tensor:
    """Log-mel spectrogram (BYOL-A front end) of mono audio (..., N) -> (..., n_mels, frames)."""
    x = torch.as_tensor(audio, dtype=torch.float32)
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    if x.shape[-1] < config.n_fft:
        x = torch.nn.functional.pad(x, (0, config.n_fft - x.shape[-1]))
    spec = torch.stft(x, n_fft=config.n_fft, hop_length=config.hop, window=_window(config.n_fft),
                      center=True, return_complex=True).abs().pow(2)  # (B, freq, frames)
    mel = torch.matmul(_filters(config), spec)
    out = torch.log(mel + torch.finfo(torch.float32).eps)
    return out.reshape(*lead, config.n_mels, out.shape[-1])


def frames_for(seconds: float, config: MelConfig = MelConfig()) -> int:
    """Number of log-mel frames for ``seconds`` of audio (centred STFT)."""
    return int(round(seconds * config.sample_rate)) // config.hop + 1
