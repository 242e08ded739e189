"""Self-supervised clip labels and laughter silencing (FunnyNet-W)."""

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.humor.data import silence_laughter
from storylab.humor.labels import (LabelConfig, clip_table, negative_windows, positive_windows, read_clip_table,
                                   write_clip_table)
from storylab.humor.laughter import LaughterResult
from storylab.subtitles import Subtitle


def test_positive_windows_end_at_onset_and_clamp_at_zero():
    assert positive_windows([(10.0, 12.0), (5.0, 6.0)], 8.0) == [(2.0, 10.0), (0.0, 5.0)]


def test_negative_windows_keep_away_from_laughter():
    laughter = [(20.0, 23.0), (40.0, 44.0)]
    config = LabelConfig(margin=2.0)
    neg = negative_windows(laughter, 60.0, 50, config, np.random.default_rng(0))
    assert neg and all(e - s == pytest.approx(8.0) for s, e in neg)
    for s, e in neg:
        assert all(abs(e - on) > 2.0 for on, _ in laughter)
        assert not any(a < e < b for a, b in laughter)
    assert len(negative_windows(laughter, 60.0, 3, config, np.random.default_rng(0))) == 3


def test_clip_table_columns_text_split_and_round_trip(tmp_path):
    results = [LaughterResult(f"ep{i}.mp4", 60.0, [(20.0, 23.0), (40.0, 44.0)]) for i in range(4)]
    subs = [[Subtitle(15.0, 19.0, "the punchline"), Subtitle(50.0, 52.0, "small talk")]] * 4
    df = clip_table(results, subs, LabelConfig(holdout=0.25))
    assert list(df.columns) == ["file", "start", "end", "label", "text", "split"]
    assert (df.label == 1).sum() == 8 and (df.label == 0).sum() == 8
    assert set(df[df.file == "ep3.mp4"].split) == {"test"} and set(df[df.file == "ep0.mp4"].split) == {"train"}
    assert df[(df.label == 1) & (df.end == 20.0)].text.iloc[0] == "the punchline"
    for suffix in (".csv", ".parquet"):
        write_clip_table(df, tmp_path / f"clips{suffix}")
        back = read_clip_table(tmp_path / f"clips{suffix}")
        assert back[["start", "end", "label", "split"]].equals(df[["start", "end", "label", "split"]])


def test_window_longer_than_episode_is_an_error():
    with pytest.raises(StorylabError, match="longer than short.mp4"):
        clip_table([LaughterResult("short.mp4", 5.0, [(3.0, 4.0)])], [[]], LabelConfig(window=8.0))


def test_laughter_replaced_by_silence_of_same_length():
    audio = np.ones((2, 16_000 * 4), np.float32)
    out = silence_laughter(audio, [(1.0, 2.5)])
    assert out.shape == audio.shape and audio.min() == 1.0  # input untouched
    assert (out[:, 16_000:40_000] == 0).all() and (out[:, :16_000] == 1).all() and (out[:, 40_000:] == 1).all()
