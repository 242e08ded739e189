"""The torch-native BERT of storylab.bert_encoder against transformers' BertModel on the same folder."""

from __future__ import annotations

import pytest
import torch

from storylab.bert_encoder import BertEncoder, unsupported_reason
from storylab.camera.director import ARCHS
from storylab.errors import StorylabError
from storylab.text_encoder import SentenceEncoder

TEXTS = ["the camera pushes in", "A dolly ZOOM, left: the camera pushes in and in and in and in and in", "zzz", ""]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "camera", "push", "##es", "in", "left", "a", "dolly",
         "zoom", ",", ":", "and"]


def tiny_bert_folder(path, hidden_act="gelu"):
    """A 2-layer BERT with random weights and a 17-word WordPiece vocabulary, saved as transformers saves one."""
    from transformers import BertConfig, BertModel, BertTokenizer

    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=40, hidden_act=hidden_act)
    BertModel(config).save_pretrained(path)
    return path


def _same_encoders(fast: SentenceEncoder, ref: SentenceEncoder, atol: float, rtol: float = 1e-4,
                   pooled_atol: float | None = None) -> None:
    assert (fast.backend, ref.backend) == ("torch", "transformers") and fast.dim == ref.dim
    for padding in ("max_length", "longest"):
        ours = fast._tokenize(TEXTS, padding)
        theirs = ref._tokenize(TEXTS, padding)
        assert torch.equal(ours["input_ids"], theirs["input_ids"])
        assert torch.equal(ours["attention_mask"].long(), theirs["attention_mask"].long())
    for pad_to_longest in (False, True):
        a, b = fast.token_states(TEXTS, pad_to_longest), ref.token_states(TEXTS, pad_to_longest)
        assert torch.equal(a.mask, b.mask)
        torch.testing.assert_close(a.states[a.mask], b.states[b.mask], atol=atol, rtol=rtol)  # real tokens
    torch.testing.assert_close(fast.encode(TEXTS), ref.encode(TEXTS), atol=pooled_atol or atol, rtol=rtol)


def test_tiny_bert_matches_transformers_tokens_and_states(tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert")
    # max_length 9 truncates the long text; the empty one is [CLS] [SEP] only
    fast, ref = SentenceEncoder(folder, max_length=9), SentenceEncoder(folder, max_length=9, backend="transformers")
    assert fast._tokenize(["the camera pushes in"], "longest")["input_ids"].tolist() == [[2, 5, 6, 7, 8, 9, 3]]
    assert fast._tokenize(TEXTS, "longest")["input_ids"].shape == (4, 9)
    _same_encoders(fast, ref, atol=1e-5)


def test_bundled_minilm_matches_transformers():
    # absolute bounds only (|state| <= 6): token states within 5e-6, pooled unit vectors within 5e-7
    _same_encoders(SentenceEncoder(), SentenceEncoder(backend="transformers"), atol=5e-6, rtol=0, pooled_atol=5e-7)


CAPTIONS = [("The camera pushes in toward the character.", "forward"),
            ("The camera trucks right while the character walks right.", "right"),
            ("The camera pulls out and rises above the character.", "static")]


@pytest.mark.parametrize("arch", ARCHS)
def test_camera_generate_draws_the_same_trajectories_with_either_text_backend(arch):
    import numpy as np

    from storylab.camera.generate import TrajectoryGenerator, character_motion, shipped_checkpoint

    generator = TrajectoryGenerator(shipped_checkpoint(arch))
    assert generator.encoder.backend == "torch"
    torch_encoder, reference = generator.encoder, SentenceEncoder(backend="transformers")
    for caption, motion in CAPTIONS:
        char = character_motion(motion, 80)
        ours = generator(caption, char, seed=0).kitti_poses
        generator.encoder = reference
        theirs = generator(caption, char, seed=0).kitti_poses
        generator.encoder = torch_encoder
        assert np.abs(ours - theirs).max() <= 1e-5  # poses up to |6|


def test_a_bert_variant_goes_through_transformers(tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert", hidden_act="gelu_new")
    assert unsupported_reason(folder, {"model_type": "bert", "hidden_act": "gelu_new"}) == \
        "activation 'gelu_new' is not exact GELU"
    assert SentenceEncoder(folder).backend == "transformers"
    assert unsupported_reason(folder, {"model_type": "roberta"}) == "model_type 'roberta' is not 'bert'"
    assert unsupported_reason(folder, {"model_type": "bert", "position_embedding_type": "relative_key"}) == \
        "position embeddings are not absolute"
    (folder / "tokenizer.json").unlink()
    assert unsupported_reason(folder, {"model_type": "bert"}) == "no tokenizer.json"


def test_a_state_without_bert_weights_is_one_clear_error():
    net = BertEncoder({"hidden_size": 8, "vocab_size": 5, "max_position_embeddings": 4, "num_attention_heads": 2,
                       "intermediate_size": 16, "num_hidden_layers": 1})
    with pytest.raises(StorylabError, match="not a BERT state: missing weight embeddings.word_embeddings.weight"):
        net.load_bert_state({"something.else": torch.zeros(1)})


def test_unknown_backend_is_refused():
    with pytest.raises(StorylabError, match="unknown text encoder backend 'onnx' \\(auto or transformers\\)"):
        SentenceEncoder(backend="onnx")


def test_a_broken_tokenizer_file_is_one_clear_error(tmp_path):
    folder = tiny_bert_folder(tmp_path / "bert")
    (folder / "tokenizer.json").write_text("{not json")
    with pytest.raises(StorylabError, match="tokenizer.json is not a tokenizers file"):
        SentenceEncoder(folder)
