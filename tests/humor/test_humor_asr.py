"""Speech recognition as the text source without subtitles (FunnyNet-W transcribes clips with Whisper)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storylab.errors import StorylabError
from storylab.humor.asr import parse_asr, word_error_rate

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def _utterance(stem: str) -> tuple[Path, str]:
    path = LIBRIVOX / f"{stem}.wav"
    if not path.exists():
        pytest.skip(f"{path} is missing: apt-get install pocketsphinx-testdata")
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line)
        if m and m.group(2) == stem:
            return path, m.group(1)
    raise AssertionError(f"no transcript for {stem}")


def test_word_error_rate_by_hand():
    assert word_error_rate("the cat sat on the mat", "the cat sat on the mat") == 0.0
    assert word_error_rate("the cat sat on the mat", "a cat sat on mat") == pytest.approx(2 / 6)  # 1 sub + 1 del
    assert word_error_rate("Hello, World!", "hello world") == 0.0


def test_asr_option_errors_are_one_line(tmp_path):
    assert parse_asr("pocketsphinx") == ("pocketsphinx", None)
    with pytest.raises(StorylabError, match="unknown --asr 'sphinx'"):
        parse_asr("sphinx")
    with pytest.raises(StorylabError, match="Whisper folder not found"):
        parse_asr(f"whisper:{tmp_path / 'nothing'}")


def test_pocketsphinx_transcribes_real_speech():
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install pocketsphinx)")
    from storylab.humor.asr import pocketsphinx_lines
    from storylab.humor.media import load_audio

    path, reference = _utterance("sense_and_sensibility_01_austen_64kb-0930")
    audio = load_audio(path).mono()
    words = pocketsphinx_lines(audio)
    assert word_error_rate(reference, " ".join(w.text for w in words)) <= 0.35
    starts = [w.start for w in words]
    assert starts == sorted(starts) and 0 <= starts[0] and words[-1].end <= len(audio) / 16_000 + 0.05


def test_clip_table_without_subtitles_gets_text_from_speech(cli, tmp_path):
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install pocketsphinx)")
    from storylab.humor.media import load_audio, write_wav

    path, _ = _utterance("sense_and_sensibility_01_austen_64kb-0930")
    speech = load_audio(path).mono()
    rng = np.random.default_rng(0)
    n = 10 * 16_000
    mid = np.zeros(n, np.float32)
    mid[16_000:16_000 + len(speech)] = speech[:n - 16_000]
    left, right = mid.copy(), mid.copy()
    onset = 16_000 + len(speech) + 8_000  # a laugh after the line, on the left only
    left[onset:onset + 3 * 16_000] += (rng.standard_normal(3 * 16_000) * 0.2).astype(np.float32)
    write_wav(tmp_path / "ep.wav", np.stack([left, right]))  # no .srt beside it
    r = cli("humor", "label", str(tmp_path), "--out", str(tmp_path / "clips.csv"), "--window", "4", "--clusters", "1")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "clips.csv", keep_default_na=False)
    positive = df[df.label == 1]
    assert len(positive) == 1 and positive.text.str.len().min() > 0
    assert "transcribed with PocketSphinx" in r.stdout


def _tiny_whisper(folder: Path) -> Path:
    """A randomly initialised Whisper (one layer, width 16) with a byte-level tokenizer, saved as a local folder."""
    import json

    import torch
    from transformers import (GenerationConfig, WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperTokenizer)
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    folder.mkdir()
    specials = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>", "<|startoflm|>",
                "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    for t in specials + stamps:
        vocab[t] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    tok = WhisperTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end, bos_token=end,
                           eos_token=end, pad_token=end)
    tok.add_special_tokens({"additional_special_tokens": specials[1:] + stamps})
    ids = {t: vocab[t] for t in specials}
    cfg = WhisperConfig(vocab_size=len(vocab), d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                        max_target_positions=64, decoder_start_token_id=ids["<|startoftranscript|>"],
                        eos_token_id=ids[end], pad_token_id=ids[end], bos_token_id=ids[end])
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(cfg)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=cfg.decoder_start_token_id, eos_token_id=ids[end], pad_token_id=ids[end], bos_token_id=ids[end],
        no_timestamps_token_id=ids["<|notimestamps|>"], max_length=64, lang_to_id={"<|en|>": ids["<|en|>"]},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]}, is_multilingual=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


def test_whisper_from_a_local_folder_gives_timed_lines(tmp_path):
    from storylab.humor.asr import transcriber

    folder = _tiny_whisper(tmp_path / "whisper-tiny-random")
    recognise, name = transcriber(f"whisper:{folder}")
    assert name == "Whisper (whisper-tiny-random)"
    audio = (np.random.default_rng(0).standard_normal(3 * 16_000) * 0.1).astype(np.float32)
    lines = recognise(audio)
    assert lines and all(0.0 <= ln.start <= ln.end <= 3.0 + 1e-6 and ln.text for ln in lines)  # random weights: any text
