"""DIRECTOR: a diffusion transformer for camera trajectories (Courant et al., ECCV 2024, Sec. 4, Fig. 4).

The network F(c_in x, c_noise, cond) -> (B, T, 9) is wrapped by EDM preconditioning
(:func:`storylab.diffusion.edm_denoise`, sigma_data 0.5, x_0 prediction); it never sees the schedule.
Three ways to condition on the character path and the caption:

* ``incontext`` (config A): three tokens prepended to the frame tokens - the noise level,
  Linear(flattened character features) and Linear(pooled sentence embedding).
* ``adaln`` (config B, DiT's adaLN-Zero): one condition vector (noise + character + text) produces
  shift/scale/gate of every block, zero-initialised so each block starts as the identity.
* ``crossattn`` (config C): learned registers + a noise token + per-frame character tokens + caption
  token states, refined by two self-attention blocks; every main block cross-attends to them, then
  self-attends, then applies its MLP.

``cond`` is a dict with a batch dimension: ``char`` (B, T, 3), ``text`` (B, Dt) pooled,
``text_tokens`` (B, L, Dt), ``text_mask`` (B, L) (1 = real token; zeroed with the caption in the
null condition) and ``mask`` (B, T) bool (valid frames; not a condition modality).

``patch`` (default 1, the paper's one token per frame) groups k consecutive frames into one token, as
DiT's patch size does for image latents (Peebles & Xie 2023, Sec. 3.1): the input and output linear
maps see 9 k features, the character tokens 3 k, and the sequence is k times shorter.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from storylab.camera.blocks import CrossAttentionBlock, attend, modulate, self_attention_block, sinusoidal  # noqa: F401
from storylab.camera.constants import MAX_FRAMES
from storylab.errors import StorylabError

ARCHS = ("incontext", "adaln", "crossattn")
SIZES = {"tiny": dict(d_model=64, n_layers=4, n_heads=4, cond_layers=2, n_registers=4, attn_dropout=0.0, patch=2),
         "paper": dict(d_model=512, n_layers=8, n_heads=16, cond_layers=2, n_registers=16, attn_dropout=0.1, patch=1)}
ARCH_LETTERS = {"incontext": "A", "adaln": "B", "crossattn": "C"}
# "director": the paper's one-stage model on world features; "twostage": a motion planner (caption ->
# per-frame tags) and a denoiser of camera-frame motion conditioned on the plan, with a no-motion gate
MODELS = {"director": {}, "twostage": dict(representation="ego", planner_layers=2)}


@dataclass
class DirectorConfig:
    """DIRECTOR architecture (``size`` fills width/depth/heads: ``tiny`` for CPU, ``paper`` = d 512, 8 layers, 16 heads)."""

    arch: str = "crossattn"
    size: str = "tiny"
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.1
    # dropout on the attention probabilities; the paper's 0.1 costs ~40 % of a CPU training step at
    # 300 frames (a Bernoulli draw per entry of every T x T map), so the tiny preset turns it off
    attn_dropout: float = 0.1
    cond_layers: int = 2
    n_registers: int = 4
    # frames per token (DiT's patch size, in time): 1 = the paper's one token per frame; k > 1 cuts
    # the sequence (and the T^2 attention) k-fold, the CPU preset's lever on step time
    patch: int = 1
    max_frames: int = MAX_FRAMES
    text_dim: int = 384
    text_tokens: int = 77
    text_encoder: str | None = None  # None: the bundled all-MiniLM-L6-v2
    # EDM works on data_scale x the standardised features (the authors multiply by sigma_data = 0.5 before
    # the loss and the sampler and divide afterwards); checkpoints saved before issue 14 load with 1.0
    data_scale: float = 0.5
    # "world": the paper's features (absolute 6D rotation, world translation deltas); "ego": motion between
    # poses in the camera's own frame (:mod:`storylab.camera.motion`), with the scales below from training data
    representation: str = "world"
    ego_rot_scale: float = 1.0
    ego_trans_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # two-stage: a motion planner (caption -> per-frame tags, :mod:`storylab.camera.planner`) whose plan
    # conditions every frame token, and the no-motion gate applied to its still axes ("axis", "frame", "none")
    planner_layers: int = 0
    planner_patch: int = 4
    motion_gate: str = "axis"

    @classmethod
    def build(cls, arch: str = "crossattn", size: str = "tiny", model: str = "director", **overrides) -> "DirectorConfig":
        """A config for ``arch`` at a named ``size`` preset and ``model`` (:data:`MODELS`), with explicit overrides."""
        if arch not in ARCHS:
            raise StorylabError(f"unknown DIRECTOR config '{arch}' (choose from {', '.join(ARCHS)})")
        if size not in SIZES:
            raise StorylabError(f"unknown size '{size}' (choose from {', '.join(SIZES)})")
        if model not in MODELS:
            raise StorylabError(f"unknown model '{model}' (choose from {', '.join(MODELS)})")
        return cls(arch=arch, size=size, **{**SIZES[size], **MODELS[model], **overrides})

    def __post_init__(self) -> None:
        if self.patch < 1:
            raise StorylabError(f"patch must be at least 1 frame, got {self.patch}")
        if self.representation not in ("world", "ego"):
            raise StorylabError(f"unknown trajectory representation '{self.representation}' (choose from world, ego)")
        if self.planner_layers and self.arch != "crossattn":
            raise StorylabError(f"the motion planner needs config crossattn (caption token states), got {self.arch}")
        self.ego_trans_scale = tuple(float(v) for v in self.ego_trans_scale)

    @property
    def two_stage(self) -> bool:
        """True when a motion planner conditions the frames on a per-frame tag plan."""
        return self.planner_layers > 0

    def to_dict(self) -> dict:
        return asdict(self)


class NoiseEmbedding(nn.Module):
    """c_noise -> (B, d): sinusoidal features (scaled, as c_noise = ln(sigma)/4 is O(1)) then an MLP."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal(c_noise * 1000.0, self.d))


class AdaLNBlock(nn.Module):
    """DiT adaLN-Zero block (Peebles & Xie 2023, Sec. 3.2): zero-initialised modulation = identity at init."""

    def __init__(self, cfg: DirectorConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(d, cfg.n_heads, dropout=cfg.attn_dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_ratio * d), nn.GELU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.mlp_ratio * d, d))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        nn.init.zeros_(self.ada[1].weight)
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)  # (B, d) each
        h = modulate(self.norm1(x), shift1, scale1)
        x = x + gate1[:, None] * attend(self.attn, h, h, pad)
        return x + gate2[:, None] * self.mlp(modulate(self.norm2(x), shift2, scale2))


class Director(nn.Module):
    """DIRECTOR network F(x_in, c_noise, cond) -> (B, T, 9) for one of the three conditioning configs."""

    def __init__(self, cfg: DirectorConfig) -> None:
        super().__init__()
        if cfg.arch not in ARCHS:
            raise StorylabError(f"unknown DIRECTOR config '{cfg.arch}' (choose from {', '.join(ARCHS)})")
        if cfg.d_model % cfg.n_heads:
            raise StorylabError(f"d_model {cfg.d_model} is not divisible by n_heads {cfg.n_heads}")
        self.cfg = cfg
        d, k = cfg.d_model, cfg.patch
        self.input = nn.Linear(9 * k, d)
        self.noise = NoiseEmbedding(d)
        # a token's position is the time of its first frame
        self.register_buffer("positions", sinusoidal(torch.arange(0, cfg.max_frames + k - 1, k), d), persistent=False)
        if cfg.arch in ("incontext", "adaln"):
            self.char_proj = nn.Linear(cfg.max_frames * 3, d)
            self.text_proj = nn.Linear(cfg.text_dim, d)
        if cfg.arch == "incontext":
            self.blocks = nn.ModuleList(self_attention_block(cfg) for _ in range(cfg.n_layers))
            self.final_norm = nn.LayerNorm(d)
            self.output = nn.Linear(d, 9 * k)
        elif cfg.arch == "adaln":
            self.blocks = nn.ModuleList(AdaLNBlock(cfg) for _ in range(cfg.n_layers))
            self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
            self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(d, 2 * d))
            self.output = nn.Linear(d, 9 * k)
            for layer in (self.final_ada[1], self.output):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        else:
            self.registers = nn.Parameter(torch.randn(cfg.n_registers, d) * 0.02)
            self.char_token = nn.Linear(3 * k, d)
            self.text_token = nn.Linear(cfg.text_dim, d)
            self.type_embed = nn.Parameter(torch.zeros(4, d))  # register, noise, character, text
            self.cond_blocks = nn.ModuleList(self_attention_block(cfg) for _ in range(cfg.cond_layers))
            self.blocks = nn.ModuleList(CrossAttentionBlock(cfg) for _ in range(cfg.n_layers))
            self.final_norm = nn.LayerNorm(d)
            self.output = nn.Linear(d, 9 * k)
        if cfg.two_stage:
            from storylab.camera.planner import MotionPlanner

            self.plan_input = nn.Linear(3 * k, d)  # the plan's per-axis codes of the token's k frames
            self.planner = MotionPlanner(cfg, cfg.planner_layers, cfg.planner_patch)

    def _flat_char(self, char: torch.Tensor) -> torch.Tensor:
        b, t, _ = char.shape
        full = char.new_zeros(b, self.cfg.max_frames, 3)
        full[:, :t] = char
        return full.flatten(1)  # (B, max_frames * 3)

    def _patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, ceil(T / k), k C): k consecutive frames per token, zero-padded at the end."""
        b, t, c = x.shape
        k = self.cfg.patch
        n = -(-t // k)
        return nn.functional.pad(x, (0, 0, 0, n * k - t)).reshape(b, n, k * c)

    def _unpatchify(self, y: torch.Tensor, t: int) -> torch.Tensor:
        """(B, N, 9 k) -> (B, T, 9)."""
        return y.reshape(y.shape[0], -1, 9)[:, :t]

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        b, t, _ = x.shape  # (B, T, 9)
        if t > self.cfg.max_frames:
            raise StorylabError(f"{t} frames is more than the model's maximum of {self.cfg.max_frames}")
        mask = cond.get("mask")
        pad, char = None, cond["char"]
        if mask is not None:
            x = x * mask[..., None]  # padded frames enter a shared token as zeros, never as noise
            char = char * mask[..., None]
            # a token is padding when all of its frames are
            pad = ~self._patchify(mask.bool()[..., None].float()).bool().any(-1)  # (B, N)
        h = self.input(self._patchify(x))
        if self.cfg.two_stage:
            h = h + self.plan_input(self._patchify(cond["plan"]))
        n = h.shape[1]  # tokens: T / patch
        h = h + self.positions[:n]  # (B, N, d)
        noise = self.noise(c_noise.reshape(-1).expand(b))  # (B, d)
        if self.cfg.arch == "incontext":
            prefix = torch.stack([noise, self.char_proj(self._flat_char(char)),
                                  self.text_proj(cond["text"])], dim=1)  # (B, 3, d)
            h = torch.cat([prefix, h], dim=1)  # (B, 3 + T, d)
            full_pad = None if pad is None else torch.cat([pad.new_zeros(b, 3), pad], dim=1)
            for block in self.blocks:
                h = block(h, src_key_padding_mask=full_pad)
            return self._unpatchify(self.output(self.final_norm(h[:, 3:])), t)
        if self.cfg.arch == "adaln":
            c = noise + self.char_proj(self._flat_char(char)) + self.text_proj(cond["text"])  # (B, d)
            for block in self.blocks:
                h = block(h, c, pad)
            shift, scale = self.final_ada(c).chunk(2, dim=-1)
            return self._unpatchify(self.output(modulate(self.final_norm(h), shift, scale)), t)
        # crossattn: condition tokens (B, R + 1 + T + L, d)
        tokens = [self.registers.expand(b, -1, -1) + self.type_embed[0],
                  noise[:, None] + self.type_embed[1],
                  self.char_token(self._patchify(char)) + self.positions[:n] + self.type_embed[2],
                  self.text_token(cond["text_tokens"]) + self.type_embed[3]]
        memory = torch.cat(tokens, dim=1)
        n_text = cond["text_tokens"].shape[1]
        frame_pad = pad if pad is not None else torch.zeros(b, n, dtype=torch.bool, device=x.device)
        text_pad = (cond["text_mask"] <= 0) if "text_mask" in cond else frame_pad.new_zeros(b, n_text)
        memory_pad = torch.cat([frame_pad.new_zeros(b, self.cfg.n_registers + 1), frame_pad, text_pad], dim=1)
        for block in self.cond_blocks:
            memory = block(memory, src_key_padding_mask=memory_pad)
        for block in self.blocks:
            h = block(h, memory, pad, memory_pad)
        return self._unpatchify(self.output(self.final_norm(h)), t)


def null_condition(cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The CFG null condition: every condition modality zeroed; the validity mask and a two-stage model's
    motion plan are kept (guidance contrasts caption and character, the plan is the layout itself)."""
    return {k: (v if k in ("mask", "plan") else torch.zeros_like(v)) for k, v in cond.items()}


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
