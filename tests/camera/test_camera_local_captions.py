"""E.T.'s caption step with a local chat model offline (camera caption --endpoint hf:PATH), on a tiny Llama built here."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np
import pytest
import torch

from storylab.camera.captions import CAPTION_MAX_TOKENS, PROMPT, LocalCaptioner
from storylab.camera.et_format import write_kitti_poses
from storylab.camera.tagging import tag_camera
from tests.chat_models import tiny_llama
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def random_llama(tmp_path_factory):
    """A tiny Llama with random (seeded) weights: its reply depends on the prompt."""
    return tiny_llama(tmp_path_factory.mktemp("llama") / "model", forced=None, seed=3)


def trucking(path, n=120):
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = np.arange(n) * 0.8 / 25
    write_kitti_poses(path, poses)
    return path, poses


def reference_reply(folder, messages, sample_seed=None, temperature=0.6):
    """transformers' own chat-template + generate path, written out apart from storylab's."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    kwargs = {"do_sample": False} if sample_seed is None else {"do_sample": True, "temperature": temperature,
                                                                "top_p": 0.95, "top_k": 0}
    if sample_seed is not None:
        torch.manual_seed(sample_seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"],
                             max_new_tokens=CAPTION_MAX_TOKENS, pad_token_id=tok.pad_token_id, **kwargs)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def expected_caption(folder, outline_text, sample_seed=None):
    """E.T.'s rule by hand: ask with the outline; if the answer has a digit, ask once more to rewrite it."""
    messages = [{"role": "system", "content": PROMPT}, {"role": "user", "content": outline_text}]
    seed = None if sample_seed is None else zlib.crc32(json.dumps(messages).encode()) + sample_seed
    text = reference_reply(folder, messages, seed)
    if re.search(r"\d", text):
        messages += [{"role": "assistant", "content": text},
                     {"role": "user", "content": "Rewrite it without any frame numbers or digits."}]
        seed = None if sample_seed is None else zlib.crc32(json.dumps(messages).encode()) + sample_seed
        text = reference_reply(folder, messages, seed)
    return text


def test_camera_caption_with_a_local_model_is_its_greedy_reply_to_the_outline(tmp_path, random_llama):
    traj, _ = trucking(tmp_path / "t.txt")
    proc = run_cli("camera", "caption", str(traj), "--endpoint", f"hf:{random_llama}", "--temperature", "0",
                   "--outline")
    assert proc.returncode == 0, proc.stderr
    outline_text = "Total frames 119;\n[Camera motion]\nBetween frames 0 and 118: trucking_right;"
    assert proc.stdout.startswith(outline_text + "\n")
    caption = proc.stdout[len(outline_text) + 1:].strip()
    assert caption and caption == expected_caption(random_llama, outline_text)


def test_local_captioner_prompts_with_the_tags_and_samples_reproducibly(tmp_path, random_llama):
    _, poses = trucking(tmp_path / "t.txt")
    captioner = LocalCaptioner(f"hf:{random_llama}")  # E.T.'s temperature 0.6, top-p 0.95
    assert (captioner.temperature, captioner.top_p) == (0.6, 0.95)
    prompts = []
    generate = captioner.lm.model.generate

    def spy(**kwargs):
        prompts.append(captioner.lm.tokenizer.decode(kwargs["input_ids"][0]))
        return generate(**kwargs)

    captioner.lm.model.generate = spy
    sampled = captioner.caption(tag_camera(poses))
    outline_text = "Total frames 119;\n[Camera motion]\nBetween frames 0 and 118: trucking_right;"
    # the model read E.T.'s instruction and the tag (WordPiece lower-cases and splits on punctuation)
    assert "never mention frame numbers" in prompts[0] and "trucking _ right" in prompts[0]
    assert sampled == expected_caption(random_llama, outline_text, sample_seed=0)
    assert captioner.caption(tag_camera(poses)) == sampled  # same seed, same outline: same caption


def test_camera_caption_bad_local_model_is_one_line(tmp_path):
    traj, _ = trucking(tmp_path / "t.txt", 40)
    proc = run_cli("camera", "caption", str(traj), "--endpoint", f"hf:{tmp_path / 'none'}")
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.startswith(f"error: caption model hf:{tmp_path / 'none'}: ")
    assert "is not a transformers model folder" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("camera", "caption", str(traj), "--endpoint", "hf:smollm2", "--temperature", "3")
    assert proc.returncode == 2 and "--temperature" in proc.stderr and "0<=x<=2" in proc.stderr
