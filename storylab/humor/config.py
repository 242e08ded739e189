"""FunnyNet-W's settings and modality names, apart from the network so the CLI reads its defaults
without loading torch (:mod:`storylab.humor.model` builds the network from them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from storylab.errors import StorylabError

MODALITY_NAMES = {"a": "audio", "v": "visual", "t": "text"}
ABLATION_SUBSETS = ("a", "v", "t", "av", "at", "vt", "avt")


def parse_modalities(value: str) -> str:
    """Normalise ``a,v,t`` / ``avt`` / ``audio,text`` into a canonical subset string such as ``at``."""
    names = {"audio": "a", "visual": "v", "video": "v", "text": "t", "a": "a", "v": "v", "t": "t"}
    parts = [p.strip().lower() for p in value.replace("+", ",").split(",") if p.strip()]
    if len(parts) == 1 and parts[0] not in names:
        parts = list(parts[0])
    chosen = set()
    for p in parts:
        if p not in names:
            raise StorylabError(f"unknown modality '{p}' in '{value}' (use a, v, t: e.g. --modalities a,v,t)")
        chosen.add(names[p])
    if not chosen:
        raise StorylabError("no modality given (use e.g. --modalities a,v,t)")
    return "".join(m for m in "avt" if m in chosen)


@dataclass
class FunnyNetConfig:
    """FunnyNet-W's architecture (defaults: the paper's fusion sizes, CPU-sized trainable encoders)."""

    modalities: str = "avt"
    architecture: str = "storylab"  # storylab | paper (the official fusion and heads, see storylab.humor.model)
    dim: int = 512                 # projection width (paper: 512)
    tokens: int = 16               # CAF tokens per modality (paper: 16 x 32)
    heads: int = 4
    dropout: float = 0.1
    window: float = 8.0            # s of context per clip
    n_mels: int = 64
    audio_encoder: str | None = None   # BYOL-A checkpoint path (frozen); None = trained BYOL-A-design CNN
    audio_channels: int = 16           # trained CNN width (BYOL-A: 64)
    audio_dim: int = 512               # trained CNN output (BYOL-A: 2048)
    tail: float = 0.25                 # trained encoders also average the clip's last quarter (the punchline's place)
    audio_flatten: str = "mel-channel"  # BYOL-A's flatten order; "channel-mel" only names checkpoints from before issue 16
    audio_pool: int = 4                # trained CNN: average log-mel frames in time by this factor (1 = BYOL-A's 10 ms)
    video_encoder: str | None = None   # local transformers video model folder (e.g. VideoMAE); None = frame CNN
    frames: int = 16                   # frames per clip (paper: 16)
    frame_size: int = 64               # frame CNN input size (VideoMAE uses its own image_size)
    frame_channels: tuple[int, ...] = (16, 32, 64, 128)
    text_encoder: str | None = None    # local transformers text folder; None = bundled all-MiniLM-L6-v2
    text_tokens: int = 64              # token states per clip (paper: 64)
    text_dim: int = 384                # width of the text encoder's token states
    lstm_hidden: int = 128
    nt_xent_weight: float = 0.03       # lambda (paper: 0.03)
    temperature: float = 0.5           # NT-Xent temperature (paper: 0.5)
    aux_weight: float = 0.0            # unimodal auxiliary cross-entropy (Wang et al. 2020); 0 = the paper's loss
    modality_dropout: float = 0.5      # training: zero each modality's projection with this probability (ModDrop); 0 = paper
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modalities = parse_modalities(self.modalities)
        if self.dim % self.tokens:
            raise StorylabError(f"projection width {self.dim} is not divisible by {self.tokens} tokens")
        if (self.dim // self.tokens) % self.heads:
            raise StorylabError(f"token width {self.dim // self.tokens} is not divisible by {self.heads} heads")
        self.frame_channels = tuple(self.frame_channels)
        if self.architecture not in ("storylab", "paper"):
            raise StorylabError(f"unknown architecture '{self.architecture}' (use storylab or paper)")
        if self.audio_flatten != "mel-channel":
            raise StorylabError(f"audio flatten order '{self.audio_flatten}' is not built; the encoder uses BYOL-A's mel-channel order")
        if not 0.0 <= self.modality_dropout < 1.0:
            raise StorylabError(f"modality dropout must be in [0, 1), got {self.modality_dropout}")
