"""ControlNet for the digit diffusion model (Zhang, Rao & Agrawala 2023, "Adding Conditional Control ...").

Each controlled block computes (paper eq. 2)

    y_c = F(x; Theta) + Z(F(x + Z(c; Theta_z1); Theta_c); Theta_z2)

with the base block F frozen, a trainable copy Theta_c initialised from the base weights and zero
convolutions Z (1x1, weight and bias 0). As in the original code the copied block is the whole
UNet encoder (embeddings, conv_in, down levels, middle block); the hint encoder maps the condition
image (32x32 for the 8x8 digits, 56x56 for the 28x28 sets: :data:`HINT_CHANNELS`) to the base's
resolution and enters once, after conv_in, through its final zero conv (Theta_z1). One zero conv per encoder output (Theta_z2) produces the residuals
added to the decoder's skips and to the middle block's output, each multiplied by a global
``conditioning_scale`` and an optional per-output scale (guess mode grows them from shallow to deep).

Options from the paper's section 3.3 / 4.3: ``mid_only`` (small-scale training: only the middle
block is connected) and ``unlock_decoder`` (large-scale training: a trainable copy of the base
decoder replaces it wherever this control is active).

:class:`ControlledDenoiser` is the sampler-facing ``denoiser(x, t, cond)``: it composes any number
of ControlNets by summing their scaled residuals (paper sec. 4.4, no extra weighting), reads each
control's hint features and per-sample scale from ``cond`` (so CFG's branches can differ: every
branch is controlled by default, as in the references; the unconditional one can be left
uncontrolled, as guess mode does) and switches a control off outside its start/end
window of the sampling steps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from storylab.diffusion import diffusion_loss
from storylab.diffusion.contract import StepContext
from storylab.errors import StorylabError
from storylab.images.control.conditions import COND_SIZE, HINT_CHANNELS, check_kind, hint_channels_for
from storylab.images.networks.denoiser import DigitDiffusion
from storylab.images.networks.unet import DigitUNet
from storylab.training import load_checkpoint, save_checkpoint

KIND = "digits-controlnet"


@dataclass
class ControlNetConfig:
    """Shape and training options of a ControlNet (saved inside its checkpoint).

    ``hint_channels`` are the hint encoder's widths; each step after the first halves the
    resolution, so (8, 16, 32) maps a 32x32 condition to the 8x8 digits and (16, 32) a 56x56 one
    to 28x28 (the paper: 16-32-96-256, 512 -> 64). ``image_size`` is the base denoiser's side
    (checkpoints older than the 28x28 sets record none: they are 8x8).
    """

    kind: str = "canny"
    hint_channels: tuple[int, ...] = (8, 16, 32)
    cond_channels: int = 1
    mid_only: bool = False
    unlock_decoder: bool = False
    image_size: int = 8

    def __post_init__(self) -> None:
        self.kind = check_kind(self.kind)
        self.hint_channels = tuple(int(c) for c in self.hint_channels)
        if not self.hint_channels or min(self.hint_channels) < 1:
            raise StorylabError(f"hint_channels must be positive widths, got {self.hint_channels}")

    @property
    def cond_size(self) -> int:
        """Side of the condition image: the base's side times 2 per hint stage after the first."""
        return self.image_size * 2 ** (len(self.hint_channels) - 1)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ControlNetConfig":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def zero_conv(cin: int, cout: int, kernel: int = 1) -> nn.Conv2d:
    """A zero convolution Z(.; Theta_z): weight and bias initialised to 0 (paper sec. 3.1)."""
    conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class HintEncoder(nn.Module):
    """Condition image -> feature map at the UNet's resolution (the paper's tiny network E(.), sec. 3.2).

    conv3x3 + SiLU, then per stage conv3x3 + SiLU, stride-2 conv3x3 + SiLU, ending in a 3x3 zero conv
    to the UNet's conv_in width (as the original code does).
    """

    def __init__(self, cond_channels: int, widths: Sequence[int], out_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(cond_channels, widths[0], 3, padding=1), nn.SiLU()]
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cin, 3, padding=1), nn.SiLU(), nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.zero_conv = zero_conv(widths[-1], out_channels, 3)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.zero_conv(self.body(cond))  # (B, 1, S * 2^k, S * 2^k) -> (B, C, S, S), k stride-2 stages


def guess_mode_scales(num_skips: int, mid_only: bool = False) -> list[float]:
    """Guess mode's per-output scales (diffusers): 10^(-1 + i / n) for skip i of n, 1.0 for the middle block.

    diffusers spaces ``n + 1`` factors log-uniformly from 0.1 (shallowest skip) to 1.0 (the middle
    block, the last one); ``num_skips`` is the encoder's skip count. A ``mid_only`` net has one
    output, the middle block, so its list is ``[1.0]``.
    """
    scales = torch.logspace(-1, 0, num_skips + 1, dtype=torch.float64).tolist()
    scales[-1] = 1.0  # the middle block; also exact when num_skips == 0 (logspace of one point is 10^-1)
    return scales[-1:] if mid_only else scales


class ControlNet(nn.Module):
    """Trainable copy of a DigitUNet's encoder + hint encoder + zero convs: residuals for the base decoder."""

    def __init__(self, base: DigitUNet, config: ControlNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or ControlNetConfig()  # its image_size must be the base's (the denoiser's config knows it)
        self.encoder = copy.deepcopy(base.encoder)  # Theta_c, initialised from the base weights
        for p in self.encoder.parameters():
            p.requires_grad_(True)
        width = base.cfg.channels
        self.hint = HintEncoder(self.config.cond_channels, self.config.hint_channels, width)
        self.zero_convs = nn.ModuleList() if self.config.mid_only else nn.ModuleList(
            zero_conv(c, c) for c in self.encoder.skip_channels)
        self.mid_zero_conv = zero_conv(self.encoder.mid_channels, self.encoder.mid_channels)
        self.decoder = copy.deepcopy(base.decoder) if self.config.unlock_decoder else None
        if self.decoder is not None:
            for p in self.decoder.parameters():
                p.requires_grad_(True)

    @property
    def num_outputs(self) -> int:
        """How many residuals this net produces (skips + middle, or the middle only)."""
        return len(self.zero_convs) + 1

    def guess_mode_scales(self) -> list[float]:
        """This net's per-output scales for guess mode (:func:`guess_mode_scales`), one per output."""
        return guess_mode_scales(len(self.encoder.skip_channels), self.config.mid_only)

    def encode_condition(self, cond: torch.Tensor) -> torch.Tensor:
        """Hint features Z(E(c); Theta_z1) ``(B, C, S, S)`` of condition images ``(B, 1, cond_size, cond_size)`` in [0, 1]."""
        if cond.shape[-1] != self.config.cond_size or cond.shape[-2] != self.config.cond_size:
            raise StorylabError(f"condition must be {self.config.cond_size}x{self.config.cond_size}, got "
                                f"{tuple(cond.shape[-2:])}")
        return self.hint(cond * 2 - 1)  # [0, 1] -> [-1, 1]

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, cond: torch.Tensor | None = None,
                hint: torch.Tensor | None = None, scale: float | torch.Tensor = 1.0,
                output_scales: Sequence[float] | None = None) -> tuple[list[torch.Tensor] | None, torch.Tensor]:
        """Residuals ``(down, mid)`` for the base decoder; ``down`` is None with ``mid_only``.

        Pass either the condition image ``cond`` or its precomputed ``hint`` features. ``scale`` is
        the conditioning scale (a float or per-sample ``(B,)``); ``output_scales`` one factor per output.
        """
        if hint is None:
            if cond is None:
                raise StorylabError("ControlNet needs a condition image or its hint features")
            hint = self.encode_condition(cond)
        emb = self.encoder.embed(t, labels)
        skips, h = self.encoder(x, emb, hint=hint)  # x + Z(c) enters after conv_in
        factors = list(output_scales) if output_scales is not None else [1.0] * self.num_outputs
        if len(factors) != self.num_outputs:
            raise StorylabError(f"expected {self.num_outputs} per-output scales, got {len(factors)}")
        s = scale if not isinstance(scale, torch.Tensor) else scale.to(x.dtype).reshape(-1, 1, 1, 1)
        down = None if self.config.mid_only else [
            zc(skip) * (s * f) for zc, skip, f in zip(self.zero_convs, skips, factors[:-1])]
        mid = self.mid_zero_conv(h) * (s * factors[-1])
        return down, mid


LATER_FIELDS = {"data": "digits", "image_size": 8}  # DigitDiffusionConfig fields newer than the shipped ControlNets
# The training-recipe fields (DigitDiffusionConfig, UNetConfig) came later still: a base that has all of them at
# their defaults was made before they existed, and its identity leaves them out as a group.
RECIPE_FIELDS = {"loss_weighting": "uniform", "snr_gamma": 5.0}
RECIPE_UNET_FIELDS = {"time_dim": 0}


def base_identity(model: DigitDiffusion) -> str:
    """SHA-256 of the base denoiser's configuration and weights: a ControlNet only fits the base it was trained on.

    Configuration fields added after ControlNets were first shipped (:data:`LATER_FIELDS`) are hashed
    only when they differ from their defaults, so a ControlNet trained before them still fits its base.
    """
    config = model.config.to_dict()
    for key, default in LATER_FIELDS.items():
        if config.get(key) == default:
            config.pop(key)
    unet = config.get("unet", {})
    if (all(config.get(k) == d for k, d in RECIPE_FIELDS.items())
            and all(unet.get(k) == d for k, d in RECIPE_UNET_FIELDS.items())):
        for key in RECIPE_FIELDS:
            config.pop(key, None)
        for key in RECIPE_UNET_FIELDS:
            unet.pop(key, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for key, value in sorted(model.unet.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().float().numpy().tobytes())
    return digest.hexdigest()


def save_controlnet(path: str | Path, net: ControlNet, base: DigitDiffusion, extra: dict | None = None) -> Path:
    """Save a ControlNet checkpoint (kind ``digits-controlnet``) recording its base model's identity."""
    config = {"controlnet": net.config.to_dict(), "base_config": base.config.to_dict(), "base_sha256": base_identity(base)}
    return save_checkpoint(path, net.state_dict(), KIND, config, extra)


def load_controlnet(path: str | Path, base: DigitDiffusion) -> ControlNet:
    """Load a ControlNet for ``base``; a checkpoint made for another base model is one clear error."""
    ckpt = load_checkpoint(path, KIND)
    expected = ckpt.config.get("base_sha256", "")
    found = base_identity(base)
    if expected != found:
        trained = ckpt.config.get("base_config", {})
        their = f"{trained.get('data', 'digits')} {trained.get('image_size', 8)}x{trained.get('image_size', 8)}"
        ours = f"{base.config.data} {base.config.image_size}x{base.config.image_size}"
        raise StorylabError(f"{path} was trained for another base model ({their} denoiser {expected[:12] or 'unknown'}, "
                            f"this one is {ours} {found[:12]}); retrain it with --base pointing at this denoiser")
    config = ControlNetConfig.from_dict(ckpt.config["controlnet"])
    if config.image_size != base.config.image_size:
        raise StorylabError(f"{path} controls {config.image_size}x{config.image_size} images, but the denoiser draws "
                            f"{base.config.image_size}x{base.config.image_size}")
    net = ControlNet(base.unet, config)
    try:
        net.load_state_dict(ckpt.state_dict)
    except RuntimeError as exc:
        raise StorylabError(f"{path}: weights do not match the recorded configuration") from exc
    net.extra = ckpt.extra  # training facts (command, seed, fidelity history)
    return net.eval()


def active_in_window(step: int, num_steps: int, start: float, end: float) -> bool:
    """Whether a control acts at ``step`` of ``num_steps``: start <= i / N and (i + 1) / N <= end (diffusers)."""
    return step / num_steps >= start and (step + 1) / num_steps <= end


def check_window(scale: float, start: float, end: float) -> None:
    """Reject scale < 0 (or nan / infinite) and windows outside [0, 1] or with start > end."""
    if not math.isfinite(scale) or scale < 0:
        raise StorylabError(f"control scale must be >= 0 and finite, got {scale}")
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise StorylabError(f"control start/end must be fractions in [0, 1], got {start}:{end}")
    if start > end:
        raise StorylabError(f"control start must be <= end, got {start}:{end}")


@dataclass
class Control:
    """One control for sampling: a net, its condition image ``(1|B, 1, S, S)``, scale and start/end window."""

    net: ControlNet
    image: torch.Tensor
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    output_scales: Sequence[float] | None = None

    def __post_init__(self) -> None:
        check_window(self.scale, self.start, self.end)


class ControlledDenoiser:
    """``denoiser(x, t, cond)`` of the base model plus the summed residuals of several ControlNets.

    ``cond`` is a label tensor (no control) or ``{"labels": (B,), "control": {"0": {"hint": (B, C, S, S),
    "scale": (B,)}, ...}}``; slot ``str(k)`` belongs to ``controls[k]``. Rows whose scale is 0 skip the
    ControlNet entirely, and a call where no control acts is exactly the base model's call.
    :meth:`observe` (fed by the sampler's step hook) switches controls off outside their windows.
    """

    def __init__(self, model: DigitDiffusion, controls: Sequence[Control]) -> None:
        unlocked = [c for c in controls if c.net.decoder is not None]
        if len(unlocked) > 1:
            raise StorylabError("at most one control may carry an unlocked decoder")
        self.model = model
        self.controls = list(controls)
        self._step: tuple[int, int] | None = None

    def observe(self, ctx: StepContext) -> None:
        """Remember where sampling is (``ctx.step`` of ``ctx.num_steps``) for the start/end windows."""
        self._step = (ctx.step, ctx.num_steps)

    def active(self, k: int) -> bool:
        """Whether control ``k`` acts at the current step (always, outside a sampler)."""
        if self._step is None:
            return True
        c = self.controls[k]
        return active_in_window(self._step[0], self._step[1], c.start, c.end)

    @torch.no_grad()
    def conditions(self, labels: torch.Tensor, null_class: int, uncond_control: bool = True,
                   negative: torch.Tensor | None = None) -> dict[str, Any]:
        """cond / uncond / negative conditions for :func:`sample_digits`; hint features are computed once here.

        Every branch is controlled by default, as in the original code and diffusers outside guess
        mode (both run the ControlNet on the unconditional batch too); ``uncond_control=False``
        leaves CFG's unconditional branch uncontrolled (guess mode's choice). The negative branch (a
        class to steer away from) is controlled like the conditional one.
        """
        self._step = None  # a new sampling run: forget the last run's position
        b = labels.shape[0]
        hints = []
        for c in self.controls:
            image = c.image if c.image.shape[0] == b else c.image.expand(b, -1, -1, -1)
            hints.append(c.net.encode_condition(image))

        def branch(branch_labels: torch.Tensor, controlled: bool) -> dict[str, Any]:
            return {"labels": branch_labels, "control": {
                str(k): {"hint": h, "scale": torch.full((b,), c.scale if controlled else 0.0)}
                for k, (c, h) in enumerate(zip(self.controls, hints))}}

        return {"cond": branch(labels, True), "uncond": branch(torch.full_like(labels, null_class), uncond_control),
                "negative": None if negative is None else branch(negative, True)}

    def residuals(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, control: dict[str, Any]
                  ) -> tuple[list[torch.Tensor] | None, torch.Tensor | None, torch.Tensor | None]:
        """Summed residuals of all acting controls (None when none acts) and the rows of an unlocked decoder."""
        unet = self.model.unet
        down: list[torch.Tensor] | None = None
        mid: torch.Tensor | None = None
        decoder_rows: torch.Tensor | None = None
        for k, c in enumerate(self.controls):
            slot = control.get(str(k))
            if slot is None or not self.active(k):
                continue
            scale = slot["scale"].to(x.dtype)
            rows = torch.nonzero(scale != 0).flatten()
            if rows.numel() == 0:
                continue
            full = rows.numel() == x.shape[0]
            pick = (lambda v: v) if full else (lambda v: v.index_select(0, rows))
            d, m = c.net(pick(x), pick(t), pick(labels), hint=pick(slot["hint"]), scale=pick(scale),
                         output_scales=c.output_scales)
            if d is not None:
                if down is None:
                    down = [x.new_zeros((x.shape[0], ch, *r.shape[2:])) for ch, r in zip(unet.encoder.skip_channels, d)]
                down = [acc.index_add(0, rows, r) for acc, r in zip(down, d)]
            mid = (x.new_zeros((x.shape[0], *m.shape[1:])) if mid is None else mid).index_add(0, rows, m)
            if c.net.decoder is not None:
                decoder_rows = rows
        return down, mid, decoder_rows

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        labels = cond["labels"] if isinstance(cond, dict) else cond
        control = cond.get("control") if isinstance(cond, dict) else None
        if not control:
            return self.model.unet(x, t, labels)
        down, mid, decoder_rows = self.residuals(x, t, labels, control)
        if mid is None:
            return self.model.unet(x, t, labels)  # no control acts: exactly the base model
        if decoder_rows is None:
            return self.model.unet(x, t, labels, down_residuals=down, mid_residual=mid)
        return _forward_with_decoder(self.model.unet, self._unlocked().decoder, x, t, labels, down, mid, decoder_rows)

    def _unlocked(self) -> ControlNet:
        return next(c.net for c in self.controls if c.net.decoder is not None)


def _forward_with_decoder(unet: DigitUNet, decoder: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor,
                          down: list[torch.Tensor] | None, mid: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Base encoder + residuals, then the unlocked decoder for ``rows`` and the base decoder for the others."""
    emb = unet.encoder.embed(t, labels)
    skips, h = unet.encoder(x, emb)
    if down is not None:
        skips = [s + r for s, r in zip(skips, down, strict=True)]
    h = h + mid
    if rows.numel() == x.shape[0]:
        return decoder(h, skips, emb)
    out = unet.decoder(h, skips, emb)
    pick = lambda v: v.index_select(0, rows)  # noqa: E731
    return out.index_copy(0, rows, decoder(pick(h), [pick(s) for s in skips], pick(emb)))


class ControlNetTraining(nn.Module):
    """Frozen base + trainable ControlNet with the paper's objective (eq. 5), labels dropped with ``p_uncond``.

    L = E ||eps - eps_theta(z_t, t, c_t, c_f)||^2; dropping the class label (the paper drops 50 % of
    the prompts) makes the control work without a class, too.
    """

    def __init__(self, base: DigitDiffusion, net: ControlNet, p_uncond: float = 0.5) -> None:
        super().__init__()
        self.base = base.eval()
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.net = net
        self.p_uncond = p_uncond

    def train(self, mode: bool = True) -> "ControlNetTraining":
        super().train(mode)
        self.base.eval()  # the base stays in inference mode (dropout off)
        return self

    def denoiser(self, x: torch.Tensor, t: torch.Tensor, cond: dict[str, torch.Tensor]) -> torch.Tensor:
        """Controlled eps prediction during training (gradients reach only the ControlNet)."""
        labels = cond["labels"]
        down, mid = self.net(x, t, labels, cond=cond["image"])
        if self.net.decoder is None:
            return self.base.unet(x, t, labels, down_residuals=down, mid_residual=mid)
        rows = torch.arange(x.shape[0], device=x.device)
        return _forward_with_decoder(self.base.unet, self.net.decoder, x, t, labels, down, mid, rows)

    def loss(self, images: torch.Tensor, labels: torch.Tensor, cond_images: torch.Tensor) -> torch.Tensor:
        drop = torch.rand(labels.shape[0], device=labels.device) < self.p_uncond
        labels = torch.where(drop, torch.full_like(labels, self.base.null_class), labels)
        return diffusion_loss(self.denoiser, images, {"labels": labels, "image": cond_images}, self.base.alpha_bar,
                              self.base.config.prediction)


def control_step_hook(controlled: ControlledDenoiser) -> Callable[[StepContext], None]:
    """The ``on_step`` hook for :func:`sample_digits` that feeds the start/end windows."""
    return controlled.observe


__all__ = ["COND_SIZE", "HINT_CHANNELS", "Control", "ControlNet", "ControlNetConfig", "ControlNetTraining", "ControlledDenoiser",
           "HintEncoder", "KIND", "active_in_window", "base_identity", "check_window", "control_step_hook",
           "guess_mode_scales", "hint_channels_for", "load_controlnet", "save_controlnet", "zero_conv"]
