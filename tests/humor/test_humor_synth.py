"""The synthetic sitcom: real speech, a laugh track that survives L - R, subtitles, ground truth."""

import json

import numpy as np

from storylab.humor.evaluation import event_scores
from storylab.humor.laughter import LaughterConfig, laughter_channel, laughter_events
from storylab.humor.media import load_audio, load_frames, media_duration
from storylab.subtitles import read_srt

SR = 16_000


def test_episode_files_and_truth(tiny_sitcom):
    out, episodes = tiny_sitcom
    ep = episodes[0]
    mp4, srt, truth = out / "episode_001.mp4", out / "episode_001.srt", out / "truth" / "episode_001.json"
    assert mp4.exists() and srt.exists() and truth.exists() and (out / "synth.json").exists()
    saved = json.loads(truth.read_text())
    assert len(saved["laughter"]) == len(ep.laughter) >= 1
    subs = read_srt(srt)
    assert len(subs) == len(ep.lines) and subs[0].text == ep.lines[0].text
    assert max(s.end for s in subs) <= media_duration(mp4) + 0.5
    punch_ends = [ln.end for ln in ep.lines if ln.punchline]
    for (onset, _), end in zip(ep.laughter, punch_ends):  # each laugh follows its punchline
        assert 0.1 < onset - end < 0.5
    frames = load_frames(mp4, fps=1, size=32)
    assert frames.images.shape[1:] == (32, 32, 3) and frames.images.std() > 5


def test_dialogue_cancels_in_l_minus_r_and_laughter_remains(tiny_sitcom):
    out, episodes = tiny_sitcom
    ep = episodes[0]
    track = load_audio(out / "episode_001.mp4")
    assert track.channels == 2
    diff, _, _ = laughter_channel(track)
    mix = track.mono()

    def rms(x, s, e):
        return float(np.sqrt(np.mean(x[int(s * SR):int(e * SR)] ** 2)))

    speech = [ln for ln in ep.lines if not any(a - 1 < ln.end and ln.start < b + 1 for a, b in ep.laughter)]
    assert speech
    for ln in speech:  # speech is loud in the mix and nearly gone in L - R (AAC keeps a faint residue)
        assert rms(diff, ln.start, ln.end) < 0.1 * rms(mix, ln.start, ln.end)
    for s, e in ep.laughter:
        assert rms(diff, s, e) > 10 * max(rms(diff, ln.start, ln.end) for ln in speech)


def test_detector_recovers_the_synthetic_laughs(tiny_sitcom):
    out, episodes = tiny_sitcom
    results = laughter_events([out / "episode_001.mp4", out / "episode_002.mp4"], LaughterConfig(clusters=1))
    for result, ep in zip(results, episodes):
        laughs = [iv for iv in result.laughter if not any(a - 0.7 <= iv[0] and iv[1] <= b + 0.7 for a, b in ep.music)]
        assert event_scores(laughs, ep.laughter, 0.5)["recall"] == 1.0
