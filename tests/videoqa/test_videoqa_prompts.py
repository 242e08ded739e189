"""SFD prompts: timestamp lines, options A-E, the letter-only instruction, even subtitle truncation."""

from __future__ import annotations

import numpy as np
import pytest

from storylab.errors import StorylabError
from storylab.subtitles import Subtitle
from storylab.videoqa.data import Question
from storylab.videoqa.prompts import (PromptConfig, build_prompt, even_subset, format_subtitle_line, format_timestamp)

Q = Question("f_01", "f", "Why did the clock stop?", "A tooth broke.", ("a", "b", "c", "d", "e"), 2)
LINES = [Subtitle(60.0 * i, 60.0 * i + 30, f"line number {i:03d} " + "word " * 10, f"SPEAKER_{i % 2:02d}")
         for i in range(100)]


def test_timestamp_and_line_format():
    assert format_timestamp(3725.9) == "01:02:05"
    line = Subtitle(61.0, 65.2, "Hello.", "SPEAKER_01")
    assert format_subtitle_line(line) == "00:01:01 - 00:01:05 Hello."
    assert format_subtitle_line(line, with_speaker=True) == "00:01:01 - 00:01:05 SPEAKER_01: Hello."


def test_mcqa_prompt_has_subtitles_options_and_instruction():
    p = build_prompt(Q, "mcqa", "L", LINES[:3])
    assert "00:00:00 - 00:00:30 line number 000" in p.text
    assert "A) a\nB) b\nC) c\nD) d\nE) e" in p.text
    assert p.text.endswith("Answer with the option letter only.")
    assert (p.subtitles_kept, p.subtitles_total, p.truncated) == (3, 3, False)
    oe = build_prompt(Q, "oeqa", "L", LINES[:3])
    assert "A) a" not in oe.text and "Question: Why did the clock stop?" in oe.text


def test_truncation_is_even_across_the_film_and_recorded():
    p = build_prompt(Q, "mcqa", "L", LINES, config=PromptConfig(max_subtitle_tokens=400))
    assert p.truncated and 0 < p.subtitles_kept < 100
    kept = [int(s.split("line number ")[1][:3]) for s in p.text.splitlines() if "line number" in s]
    assert kept[0] == 0 and kept[-1] == 99  # the end of the film is not cut
    gaps = np.diff(kept)
    assert gaps.max() - gaps.min() <= 1  # evenly spaced
    assert f"{p.subtitles_kept} of 100 lines" in p.text


def test_even_subset_fits_budget():
    costs = [5, 50, 5, 5, 50, 5, 5]
    for budget in (0, 10, 30, 70, 1000):
        idx = even_subset(costs, budget)
        assert sum(costs[i] for i in idx) <= budget
    assert even_subset(costs, 1000) == list(range(7))


def test_visual_modes_need_frames_and_hash_sees_pixels():
    frames = [np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)]
    v = build_prompt(Q, "mcqa", "V", [], frames)
    assert "2 frames" in v.text and "subtitles" not in v.text and len(v.frames) == 2
    other = build_prompt(Q, "mcqa", "V", [], [frames[1], frames[0]])
    assert v.hash() != other.hash() and v.text == other.text
    vl = build_prompt(Q, "mcqa", "VL", LINES[:2], frames)
    assert "2 frames" in vl.text and "00:01:00 - 00:01:30" in vl.text
    with pytest.raises(StorylabError, match="needs frames"):
        build_prompt(Q, "mcqa", "VL", LINES[:2], [])
    with pytest.raises(StorylabError, match="unknown mode"):
        build_prompt(Q, "mcqa", "A", [])
