"""BERT's encoder (Devlin et al. 2019) on ``torch.nn.TransformerEncoderLayer``, loaded from a transformers BERT folder.

Why not ``transformers.BertModel``: importing it costs about 4 s of CPU before any weight is read
(transformers pulls in ``torch._dynamo``, whose trace rules import scipy and scikit-learn), which was
most of ``storylab camera generate``'s start-up (issue #20). A post-LN BERT layer *is* PyTorch's
``TransformerEncoderLayer`` (``norm_first=False``, exact GELU, BERT's ``layer_norm_eps``), so only the
weight names are mapped here; the tokenizer is the folder's own ``tokenizer.json`` run by the
``tokenizers`` library (the same Rust tokenizer transformers' fast BERT tokenizer runs). Only a plain
BERT is accepted (:func:`unsupported_reason`); anything else goes through transformers in
:mod:`storylab.text_encoder`, and ``tests/test_bert_encoder.py`` checks both give the same tokens and
states.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import torch
from torch import nn

from storylab.errors import StorylabError

_LAYER_NAMES = {  # ours (TransformerEncoderLayer) <- BERT's, for .weight and .bias
    "self_attn.out_proj": "attention.output.dense", "norm1": "attention.output.LayerNorm",
    "linear1": "intermediate.dense", "linear2": "output.dense", "norm2": "output.LayerNorm",
}


def unsupported_reason(folder: Path, config: dict) -> str | None:
    """Why ``folder`` is not a plain BERT this module can run (None when it is)."""
    checks = [
        (config.get("model_type") == "bert", f"model_type {config.get('model_type')!r} is not 'bert'"),
        (config.get("hidden_act", "gelu") == "gelu", f"activation {config.get('hidden_act')!r} is not exact GELU"),
        (config.get("position_embedding_type", "absolute") == "absolute", "position embeddings are not absolute"),
        (not config.get("is_decoder", False) and not config.get("add_cross_attention", False), "a decoder BERT"),
        ((folder / "model.safetensors").is_file(), "no model.safetensors"),
        ((folder / "tokenizer.json").is_file(), "no tokenizer.json"),
    ]
    return next((why for ok, why in checks if not ok), None)


@dataclass
class EncoderOutput:
    """The last layer's token states ``(N, L, D)``, as transformers names them."""

    last_hidden_state: torch.Tensor


def _embedding(rows: int, d: int) -> nn.Embedding:
    # left uninitialised (filled by load_bert_state): a random init of MiniLM's 30522 x 384 table costs 0.2 s
    return nn.Embedding(rows, d, _weight=torch.empty(rows, d))


class BertEncoder(nn.Module):
    """Embeddings (word + absolute position + token type 0, LayerNorm) and N post-LN encoder layers.

    The embedding tables are uninitialised until :meth:`load_bert_state` (use :func:`load_bert`).
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        d, eps = int(config["hidden_size"]), float(config.get("layer_norm_eps", 1e-12))
        self.config = SimpleNamespace(**config)
        self.word_embeddings = _embedding(int(config["vocab_size"]), d)
        self.position_embeddings = _embedding(int(config["max_position_embeddings"]), d)
        self.token_type_embeddings = _embedding(int(config.get("type_vocab_size", 2)), d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, int(config["num_attention_heads"]), int(config["intermediate_size"]),
                                       dropout=0.0, activation="gelu", layer_norm_eps=eps, batch_first=True)
            for _ in range(int(config["num_hidden_layers"])))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        """Token states of ``input_ids`` ``(N, L)``; ``attention_mask`` is 1 on real tokens, 0 on padding."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None] + self.token_type_embeddings.weight[0]
        x = self.norm(x)  # (N, L, D)
        padding = attention_mask == 0
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=padding)
        return EncoderOutput(last_hidden_state=x)

    def load_bert_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a transformers ``BertModel`` state dict (keys with or without the ``bert.`` prefix; the pooler is unused)."""
        state = {k.removeprefix("bert."): v for k, v in state.items()}
        ours = {"word_embeddings.weight": "embeddings.word_embeddings.weight",
                "position_embeddings.weight": "embeddings.position_embeddings.weight",
                "token_type_embeddings.weight": "embeddings.token_type_embeddings.weight",
                "norm.weight": "embeddings.LayerNorm.weight", "norm.bias": "embeddings.LayerNorm.bias"}
        try:
            mapped = {mine: state[theirs] for mine, theirs in ours.items()}
            for i in range(len(self.layers)):
                src, dst = f"encoder.layer.{i}.", f"layers.{i}."
                for part in ("weight", "bias"):
                    mapped[f"{dst}self_attn.in_proj_{part}"] = torch.cat(
                        [state[f"{src}attention.self.{name}.{part}"] for name in ("query", "key", "value")])
                    for mine, theirs in _LAYER_NAMES.items():
                        mapped[f"{dst}{mine}.{part}"] = state[f"{src}{theirs}.{part}"]
        except KeyError as exc:
            raise StorylabError(f"not a BERT state: missing weight {exc.args[0]}") from None
        self.load_state_dict(mapped)


class _Batch(dict):
    """Tokenizer output (``input_ids``, ``attention_mask`` tensors) that moves to a device like transformers' BatchEncoding."""

    def to(self, device: str | torch.device) -> _Batch:
        return _Batch({k: v.to(device) for k, v in self.items()})


class BertTokenizer:
    """The folder's ``tokenizer.json`` (normaliser, WordPiece, [CLS] ... [SEP] template) with transformers' call signature."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as exc:  # tokenizers raises a bare Exception on a broken file
            raise StorylabError(f"{folder / 'tokenizer.json'} is not a tokenizers file ({exc})") from None
        self._lock = threading.Lock()
        settings_file = folder / "tokenizer_config.json"
        settings = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.is_file() else {}
        self.pad_token = settings.get("pad_token", "[PAD]")
        if isinstance(self.pad_token, dict):  # an AddedToken written out
            self.pad_token = self.pad_token.get("content", "[PAD]")
        pad_id = self._tokenizer.token_to_id(self.pad_token)
        if pad_id is None:
            raise StorylabError(f"{folder}: the pad token {self.pad_token!r} is not in tokenizer.json")
        self.pad_token_id = pad_id

    def __call__(self, texts: Sequence[str], padding: str | bool = True, truncation: bool = True,
                 max_length: int | None = None, return_tensors: str = "pt") -> _Batch:
        """``input_ids`` and ``attention_mask`` ``(N, L)``: padded to the longest text (``padding=True`` or
        ``"longest"``) or to ``max_length`` (``"max_length"``), cut at ``max_length`` tokens with ``truncation``."""
        if return_tensors != "pt":
            raise ValueError("only return_tensors='pt' is supported")
        tok = self._tokenizer
        with self._lock:  # padding and truncation are settings of the shared tokenizer (the web app has threads)
            if truncation and max_length is not None:
                tok.enable_truncation(max_length)
            else:
                tok.no_truncation()
            length = max_length if padding == "max_length" else None
            tok.enable_padding(pad_id=self.pad_token_id, pad_token=self.pad_token, length=length)
            encodings = tok.encode_batch(list(texts))
        return _Batch(input_ids=torch.tensor([e.ids for e in encodings], dtype=torch.long).reshape(len(encodings), -1),
                      attention_mask=torch.tensor([e.attention_mask for e in encodings],
                                                  dtype=torch.long).reshape(len(encodings), -1))


def load_bert(folder: Path, config: dict) -> tuple[BertTokenizer, BertEncoder]:
    """The tokenizer and the encoder (in eval mode) of a plain-BERT folder (see :func:`unsupported_reason`)."""
    from safetensors.torch import load_file

    from storylab.training.checkpoint import check_finite

    state = load_file(str(folder / "model.safetensors"))
    check_finite(state, folder / "model.safetensors")
    model = BertEncoder(config)
    model.load_bert_state(state)
    return BertTokenizer(folder), model.eval()
