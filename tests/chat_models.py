"""Tiny chat language models built in a test (nothing downloaded), shared by the video QA and camera tests."""

from __future__ import annotations

from pathlib import Path

import torch

CHAT_TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>{% endif %}")


def tiny_llama(folder: Path, forced: str | None = "c", seed: int = 0) -> Path:
    """A 1-layer Llama with the bundled MiniLM WordPiece tokenizer and a plain chat template, saved to ``folder``.

    With ``forced`` set, its greedy output is always that token (all embeddings equal, blocks silenced,
    the head has weight on ``forced`` only); with ``forced=None`` the weights stay random (seeded), so
    the reply depends on the prompt.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from storylab.text_encoder import bundled_minilm_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_path(), local_files_only=True)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.cls_token_id,
                         eos_token_id=tokenizer.sep_token_id, tie_word_embeddings=False)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if forced is not None:
        target = tokenizer.convert_tokens_to_ids(forced)
        with torch.no_grad():  # every position carries the same vector e; the head has weight on the target only
            e = torch.randn(16)
            model.model.embed_tokens.weight[:] = e
            for layer in model.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            model.lm_head.weight.zero_()
            model.lm_head.weight[target] = e
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
