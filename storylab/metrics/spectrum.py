"""The high-frequency share of an image set's spectral energy: a direct measure of speckle.

Speckle (independent per-pixel noise left by a sampler) puts energy at the highest spatial frequencies,
where natural images have little (their power falls roughly as 1 / f^2, van der Schaaf & van Hateren 1996).
The share is the 2-D DFT power at normalised radial frequency |f| >= ``cutoff`` (in cycles per pixel,
the Nyquist limit is 0.5) over the power of every non-zero frequency, pooled over the set. The mean of each
image is removed first, so brightness does not count.
"""

from __future__ import annotations

import torch


def high_frequency_share(images: torch.Tensor, cutoff: float = 0.25) -> float:
    """Share of spectral power at radial frequency >= ``cutoff`` cycles/pixel of images ``(N, C, H, W)``."""
    if not 0 < cutoff < 0.5 * 2 ** 0.5:
        raise ValueError(f"cutoff must be in (0, 0.707) cycles per pixel, got {cutoff}")
    x = images.double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs() ** 2  # (N, C, H, W)
    fy = torch.fft.fftfreq(x.shape[-2], dtype=torch.float64)
    fx = torch.fft.fftfreq(x.shape[-1], dtype=torch.float64)
    radius = (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()
    total = power.sum(dim=(0, 1))
    high = total[radius >= cutoff].sum()
    return float(high / total.sum()) if float(total.sum()) > 0 else 0.0
