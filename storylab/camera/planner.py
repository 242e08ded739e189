"""Motion planner: caption + character path -> per-frame camera tags (the first stage of two-stage DIRECTOR).

E.T.'s captions are written from the tag segments (Courant et al., ECCV 2024, Sec. 3), so a caption
fixes the order of the camera motions but not their frame spans. The planner predicts, for every
motion between poses, a 3-way class per axis (still / positive / negative; x right, y down, z forward)
from the caption's token states, the character's velocities and the frame's absolute and relative time
(t / n: a caption's segments stretch with the clip). The network is DIRECTOR config C's stack (frame
tokens cross-attend to the caption, then self-attend; :class:`storylab.camera.director.CrossAttentionBlock`)
with a classification head, trained by cross-entropy on the reference tags of the *training* split.
At generation the argmax labels go through E.T.'s own mode filter and short-segment merging
(:mod:`storylab.camera.tagging`), so the plan has the segment structure real tags have.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from storylab.camera.tagging import merge_short_segments, mode_filter


class MotionPlanner(nn.Module):
    """(caption tokens, character features, mask) -> (B, T, 3 axes, 3 classes) logits, row-aligned
    (row t = the motion from pose t - 1 to pose t; row 0 has no motion and is ignored)."""

    def __init__(self, cfg, layers: int, patch: int) -> None:
        from storylab.camera.blocks import CrossAttentionBlock, self_attention_block, sinusoidal

        super().__init__()
        d = cfg.d_model
        self.patch = patch
        self.char_in = nn.Linear(3 * patch, d)
        self.register_buffer("positions", sinusoidal(torch.arange(0, cfg.max_frames + patch - 1, patch), d),
                             persistent=False)
        self.relative = nn.Linear(d, d)
        self.text_in = nn.Linear(cfg.text_dim, d)
        self.text_blocks = nn.ModuleList(self_attention_block(cfg) for _ in range(1))
        self.blocks = nn.ModuleList(CrossAttentionBlock(cfg) for _ in range(layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 9 * patch)

    def forward(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        from storylab.camera.blocks import sinusoidal

        char, mask = cond["char"], cond["mask"]  # (B, T, 3), (B, T)
        b, t, _ = char.shape
        k = self.patch
        n_tok = -(-t // k)
        char = nn.functional.pad(char * mask[..., None], (0, 0, 0, n_tok * k - t)).reshape(b, n_tok, 3 * k)
        valid = nn.functional.pad(mask.float(), (0, n_tok * k - t)).reshape(b, n_tok, k)
        pad = valid.sum(-1) == 0  # (B, N) True = padding token
        length = mask.sum(1, keepdim=True).clamp(min=2).float()  # (B, 1)
        rel = torch.arange(n_tok, device=char.device)[None].float() * k / (length - 1)  # (B, N) in [0, ~1]
        h = self.char_in(char) + self.positions[:n_tok] + self.relative(sinusoidal(rel * 1000.0, self.norm.normalized_shape[0]))
        memory = self.text_in(cond["text_tokens"])  # (B, L, d)
        text_pad = cond["text_mask"] <= 0
        for block in self.text_blocks:
            memory = block(memory, src_key_padding_mask=text_pad)
        for block in self.blocks:
            h = block(h, memory, pad, text_pad)
        logits = self.head(self.norm(h)).reshape(b, n_tok * k, 3, 3)  # (B, N k, axis, class)
        return logits[:, :t]

    def loss(self, cond: dict[str, torch.Tensor], plan: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of the per-axis classes on rows 1..n-1 of every sample (``plan``: (B, T, 3) codes)."""
        logits = self(cond)
        target = torch.where(plan > 0.5, 1, torch.where(plan < -0.5, 2, 0))  # (B, T, 3)
        rows = cond["mask"].clone()
        rows[:, 0] = False
        ce = nn.functional.cross_entropy(logits.reshape(-1, 3), target.reshape(-1), reduction="none").reshape(target.shape)
        return (ce * rows[..., None]).sum() / (rows.sum() * 3).clamp(min=1)

    @torch.no_grad()
    def plan(self, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T, 3) row-aligned codes in {-1, 0, 1}: argmax per axis, then E.T.'s mode filter and merging
        on the n_i - 1 motions of each sample (padding rows stay 0)."""
        from storylab.camera.motion import codes_to_labels, tag_codes

        classes = self(cond).argmax(-1)  # (B, T, 3)
        codes = torch.where(classes == 1, 1.0, torch.where(classes == 2, -1.0, 0.0)).cpu().numpy()
        out = np.zeros(codes.shape, dtype=np.float32)
        for i, n in enumerate(cond["mask"].sum(1).tolist()):
            if n < 2:
                continue
            labels = codes_to_labels(codes[i, 1:n])
            out[i, 1:n] = tag_codes(merge_short_segments(mode_filter(labels)))
        return torch.from_numpy(out).to(cond["char"].device)
