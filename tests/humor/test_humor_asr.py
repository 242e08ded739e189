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
