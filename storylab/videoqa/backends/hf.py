"""A local transformers causal language model (``hf:PATH``) as a Video QA backend.

The folder must hold a ``config.json``, weights and a tokenizer (``save_pretrained`` output); nothing
is downloaded. The prompt goes through the tokenizer's chat template when it has one, else as plain
``system / user / Answer:`` text; decoding is greedy. The subtitle budget is capped by the model's
context length, counted with its own tokenizer. Text-only models cannot read frames, so V and VL
need a vision model behind an ``openai://`` server.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.cache import ResponseCache, request_key


class HFBackend:
    """Greedy generation with a local ``AutoModelForCausalLM`` (one request at a time)."""

    def __init__(self, spec: str, cache: ResponseCache | None = None, max_tokens: int = 128, device: str = "cpu") -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the run has its own progress bar

        self.spec = spec
        self.path = Path(spec[len("hf:"):]).expanduser()
        if not (self.path / "config.json").is_file():
            raise StorylabError(f"backend {spec}: {self.path} is not a transformers model folder (no config.json)")
        try:
            config = AutoConfig.from_pretrained(self.path, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorylabError(f"backend {spec}: cannot load the model: {first}") from None
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        self.label = self.path.resolve().name
        self.context_length = next((int(v) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                                    if (v := getattr(config, k, None))), None)
        self.max_tokens = max_tokens
        self.cache = cache
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, system: str, text: str) -> str:
        """The prompt string: the chat template when the tokenizer has one, else plain turns."""
        if getattr(self.tokenizer, "chat_template", None):
            turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
            return self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return f"{system}\n\n{text}\n\nAnswer:" if system else f"{text}\n\nAnswer:"

    def answer(self, item: QAItem) -> Reply:
        """Greedy answer to the item's prompt (L mode; frames are refused)."""
        return self.chat(item.prompt.system, item.prompt.text, item.prompt.frames)

    def chat(self, system: str, text: str, frames: Sequence[np.ndarray] = (), max_tokens: int | None = None) -> Reply:
        """One system + user turn, greedy decoding (used for answers and as an OEQA judge)."""
        import torch

        if len(frames):
            raise StorylabError(f"backend {self.spec} is a text-only model and cannot read frames; use mode L, "
                                "or serve a vision model behind openai://HOST:PORT/MODEL for V and VL")
        max_new = max_tokens or self.max_tokens
        prompt = self.render(system, text)
        key = request_key("hf", str(self.path.resolve()), prompt, max_new)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return Reply(hit, cached=True)
        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        # only ids and mask: BERT-style tokenizers add token_type_ids that decoder-only models reject
        batch = {k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask") if k in encoded}
        length = batch["input_ids"].shape[1]
        if self.context_length is not None and length + max_new > self.context_length:
            raise StorylabError(f"backend {self.spec}: prompt of {length} tokens plus {max_new} new tokens exceeds "
                                f"the model's context of {self.context_length}; lower --max-subtitle-tokens")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_new, do_sample=False, pad_token_id=pad)
        reply = self.tokenizer.decode(out[0, length:], skip_special_tokens=True).strip()
        if self.cache is not None:
            self.cache.put(key, reply, model=str(self.path))
        return Reply(reply)
