"""Text conditioning through a local CLIP text model folder (E.T. used CLIP ViT-B/32), built tiny in the test."""

from __future__ import annotations

import json

import numpy as np
import torch

from storylab.camera.data import encode_captions
from storylab.camera.director import Director, DirectorConfig
from storylab.camera.generate import TrajectoryGenerator, character_motion
from storylab.camera.training import save_director
from storylab.text_encoder import SentenceEncoder


def tiny_clip_folder(path):
    """A 1-layer CLIP text model with a byte-level vocabulary and no merges, saved like a real one."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"])}
    path.mkdir()
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                            num_attention_heads=2, max_position_embeddings=77, projection_dim=16,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"])
    CLIPTextModelWithProjection(config).save_pretrained(path)
    return path


def test_clip_folder_drives_director(tmp_path):
    folder = tiny_clip_folder(tmp_path / "clip")
    encoder = SentenceEncoder(folder)
    enc = encode_captions(encoder, ["the camera pushes in", "the camera trucks left"], tokens=True, progress=False)
    assert enc["text_tokens"].shape == (2, 77, 32) and enc["text_mask"].shape == (2, 77)
    # A/B: the end-of-text state after ln_final, unprojected (hidden 32, not projection 16) and unnormalised
    assert enc["text"].shape == (2, 32)
    batch = encoder.tokenizer(["the camera pushes in", "the camera trucks left"], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model.text_model.embeddings(input_ids=batch["input_ids"])
        n = hidden.shape[1]
        causal = torch.full((n, n), float("-inf")).triu(1)[None, None]
        pad = (1.0 - batch["attention_mask"][:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in encoder.model.text_model.encoder.layers:  # the transformer written out, then ln_final
            out = layer(hidden, causal + pad, causal_attention_mask=None)
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = encoder.model.text_model.final_layer_norm(hidden)
    eot = (batch["input_ids"] == encoder.tokenizer.eos_token_id).int().argmax(1)  # first end-of-text token
    torch.testing.assert_close(enc["text"], hidden[torch.arange(2), eot], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(enc["text"].norm(dim=-1), torch.ones(2))
    # C: the 77-token sequence (states after ln_final), masked beyond the caption's tokens
    states = encoder.token_states(["the camera pushes in"])
    torch.testing.assert_close(enc["text_tokens"][0].float(), states.states[0] * states.mask[0, :, None], atol=2e-3, rtol=2e-3)
    ckpt = tmp_path / "d.safetensors"
    save_director(ckpt, Director(DirectorConfig.build("crossattn", d_model=32, n_layers=1, n_heads=2, cond_layers=1,
                                                      text_dim=32, text_encoder=str(folder))))
    gen = TrajectoryGenerator(ckpt)
    result = gen("the camera pushes in", character_motion("left", 30), steps=2)
    assert result.kitti_poses.shape == (30, 4, 4) and np.isfinite(result.kitti_poses).all()
