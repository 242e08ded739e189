"""The hf:PATH backend on a tiny GPT-2 built in the test (random weights, one output forced), nothing downloaded."""

from __future__ import annotations

import json

import pytest
import torch

from storylab.errors import StorylabError
from storylab.videoqa.backends import make_backend
from storylab.videoqa.prompts import PromptConfig
from storylab.videoqa.runner import EvalConfig, run_eval
from tests.chat_models import tiny_llama


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A 2-layer GPT-2 with the bundled MiniLM WordPiece tokenizer whose greedy output is always 'c'."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from storylab.text_encoder import bundled_minilm_path

    folder = tmp_path_factory.mktemp("tiny_gpt2")
    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path(), local_files_only=True)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=16, n_layer=2, n_head=2,
                        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                        eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    target = tokenizer.convert_tokens_to_ids("c")
    with torch.no_grad():  # final LayerNorm outputs a constant vector e_0; only 'c' has weight on it
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[:, 0] = 0.0
        model.transformer.wte.weight[target, 0] = 5.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_hf_backend_answers_and_caps_context(tiny_set, tiny_lm):
    cfg = EvalConfig(questions=tiny_set["questions"], subtitles=tiny_set["subtitles"], out=tiny_set["root"] / "hf",
                     backend=f"hf:{tiny_lm}", mode="L", max_tokens=1, progress=False, concurrency=2)
    summary = run_eval(cfg)
    assert summary["accuracy"] == 0.25 and summary["unparsed"] == 0  # always "c": right only where C is correct
    again = run_eval(EvalConfig(**{**cfg.__dict__, "out": tiny_set["root"] / "hf2", "cache_dir": tiny_set["root"] / "hf" / "cache"}))
    assert again["cached_replies"] == 4


def test_hf_backend_fits_subtitles_into_the_context(tiny_set, tiny_lm):
    long_subs = tiny_set["root"] / "long.csv"
    long_subs.write_text("text,start,end,speaker,video_id\n" + "".join(
        f"the clocks all stopped at noon again and again {i},{i},{i + 1},S,film\n" for i in range(200)))
    cfg = EvalConfig(questions=tiny_set["questions"], subtitles=long_subs, out=tiny_set["root"] / "long",
                     backend=f"hf:{tiny_lm}", mode="L", max_tokens=2, progress=False, limit=1)
    summary = run_eval(cfg)
    assert summary["subtitles_truncated"] == 1 and summary["n"] == 1


def test_hf_backend_bad_inputs(tmp_path, tiny_lm):
    with pytest.raises(StorylabError, match="not a transformers model folder"):
        make_backend(f"hf:{tmp_path}")
    backend = make_backend(f"hf:{tiny_lm}")
    with pytest.raises(StorylabError, match="text-only model and cannot read frames"):
        backend.chat("s", "t", [torch.zeros(2, 2, 3).numpy()])
    with pytest.raises(StorylabError, match="unknown backend 'gpt'"):
        make_backend("gpt")


def test_hf_backend_runs_a_llama_through_its_chat_template(tiny_set, tmp_path):
    """A Llama whose greedy output is always 'c' (all embeddings equal, blocks silenced): the chat
    template is applied, the reply decoded after the prompt, and the score is the hand count."""
    tiny_llama(tmp_path / "llama")  # greedy output always "c"
    backend = make_backend(f"hf:{tmp_path / 'llama'}", max_tokens=1)
    assert backend.render("sys", "hi") == "<system> sys\n<user> hi\n<assistant>"
    assert backend.render("", "hi") == "<user> hi\n<assistant>"  # SF20K's prompt has no system turn
    cfg = EvalConfig(questions=tiny_set["questions"], subtitles=tiny_set["subtitles"], out=tmp_path / "run",
                     backend=f"hf:{tmp_path / 'llama'}", mode="L", max_tokens=1, progress=False)
    first = run_eval(cfg, backend)
    replies = [json.loads(line)["response"] for line in (tmp_path / "run" / "predictions.jsonl").read_text().splitlines()]
    assert replies == ["c"] * 4
    assert first["n"] == 4 and first["accuracy"] == 1 / 4 and first["unparsed"] == 0  # C is right for film_02 only
    longva = run_eval(EvalConfig(**{**cfg.__dict__, "out": tmp_path / "longva",
                                    "prompt": PromptConfig(style="longva")}), backend)
    assert longva["accuracy"] == 0.0 and longva["unparsed"] == 4  # "c" is not "(3)" for the strict regex
