"""Video QA backends, chosen by a ``--backend`` spec string.

``openai://HOST:PORT/MODEL`` (any OpenAI-compatible chat server: vLLM, llama.cpp, Ollama),
``hf:PATH`` (a local transformers model folder), ``retrieval`` (offline subtitle-retrieval
baseline with the bundled MiniLM sentence encoder) and ``random`` (the chance row).
"""

from __future__ import annotations

import os

from storylab.errors import StorylabError
from storylab.videoqa.backends.base import Backend, QAItem, Reply

BACKEND_HELP = "openai://HOST:PORT/MODEL, openai+https://HOST/MODEL, hf:PATH, retrieval, random"


def make_backend(spec: str, cache_dir: str | os.PathLike | None = None, timeout: float = 120.0,
                 retries: int = 3, backoff: float = 1.0, max_tokens: int = 128, seed: int = 0) -> Backend:
    """Build the backend named by ``spec``; an unknown spec is one clear error line."""
    from storylab.videoqa.cache import ResponseCache

    cache = ResponseCache(cache_dir) if cache_dir is not None else None
    if spec.startswith(("openai://", "openai+http://", "openai+https://")):
        from storylab.videoqa.backends.openai_chat import OpenAIChatBackend
        return OpenAIChatBackend(spec, cache=cache, timeout=timeout, retries=retries, backoff=backoff,
                                 max_tokens=max_tokens)
    if spec.startswith("hf:"):
        from storylab.videoqa.backends.hf import HFBackend
        return HFBackend(spec, cache=cache, max_tokens=max_tokens)
    if spec == "retrieval":
        from storylab.videoqa.backends.retrieval import RetrievalBaseline
        return RetrievalBaseline()
    if spec == "random":
        from storylab.videoqa.backends.random_choice import RandomBackend
        return RandomBackend(seed=seed)
    raise StorylabError(f"unknown backend {spec!r}; use one of: {BACKEND_HELP}")


__all__ = ["Backend", "QAItem", "Reply", "make_backend", "BACKEND_HELP"]
