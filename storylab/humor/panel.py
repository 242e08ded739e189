"""The humor wing's interactive panel: a video (+ subtitles) -> FunnyNet-W funny moments, timeline, clips.

Plain functions over the shipped FunnyNet-W checkpoint (Liu et al., IJCV 2024) that the web app and
``storylab demo`` call; they do what ``storylab humor detect`` does, with the same checks and errors,
and also cut each top moment's window into a short playable clip.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

from storylab.errors import StorylabError

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "humor"
SHIPPED = ASSETS / "funnynet_avt.safetensors"
ESPEAK_HINT = ("the synthetic sitcom needs espeak-ng for its speech: install it (sudo apt-get install espeak-ng on "
               "Debian/Ubuntu, brew install espeak-ng on macOS) and run again")


def espeak_available() -> bool:
    """Whether espeak-ng (the speech of the synthetic episodes) is installed."""
    return shutil.which("espeak-ng") is not None


@lru_cache(maxsize=2)
def _model(path: str) -> Any:
    from storylab.humor.train import load_funnynet

    return load_funnynet(path)


def synthetic_episode(out_dir: str | Path, duration: float = 24.0, seed: int = 0, fps: int = 5,
                      size: tuple[int, int] = (96, 72)) -> tuple[Path, Path]:
    """Synthesise one short sitcom episode (espeak-ng speech, canned laughter); return (video, subtitles)."""
    from storylab.humor.synth import SynthConfig, synth_sitcom

    if not espeak_available():
        raise StorylabError(ESPEAK_HINT)
    out = Path(out_dir)
    synth_sitcom(out, SynthConfig(episodes=1, duration=float(duration), scenes=1, fps=fps, width=size[0],
                                  height=size[1], seed=int(seed)), progress=False)
    return out / "episode_001.mp4", out / "episode_001.srt"


@dataclass
class HumorResult:
    """What FunnyNet-W found in one video."""

    video: Path
    times: np.ndarray            # window ends (s)
    scores: np.ndarray           # P(funny) of the window ending there
    moments: list[Any]           # FunnyMoment, in time order
    laughter: list[tuple[float, float]]
    threshold: float
    modalities: str
    seconds: float
    clips: list[Path] = field(default_factory=list)

    def top(self, k: int = 5) -> list[Any]:
        """The ``k`` highest-scoring moments, best first."""
        return sorted(self.moments, key=lambda m: -m.score)[:k]


def check_video(path: str | Path) -> Path:
    """An uploaded video: it exists and PyAV can read it (the same checks and messages as ``humor detect``)."""
    from storylab.humor.media import media_duration

    p = Path(path)
    if not p.exists():
        raise StorylabError(f"video not found: {p}")
    media_duration(p)  # unreadable media -> StorylabError from the codec layer
    return p


def detect(video: str | Path, subtitles: str | Path | None = None, stride: float = 1.0, threshold: float | None = None,
           checkpoint: str | Path = SHIPPED, progress: Callable[[float, str], None] | None = None) -> HumorResult:
    """Silence the video's own laughter, slide FunnyNet-W over it, and return the funny moments (``humor detect``,
    with its default moment rule; ``threshold`` None = the rule's)."""
    from storylab.humor.detect import DetectConfig, funny_moments
    from storylab.humor.laughter import laughter_events
    from storylab.humor.media import media_duration
    from storylab.humor.subtitles import check_against_duration, read_subtitles

    video = check_video(video)
    if not Path(checkpoint).exists():
        raise StorylabError(f"no FunnyNet-W checkpoint at {checkpoint}")
    t0 = time.perf_counter()
    step = progress or (lambda fraction, what: None)
    step(0.05, "loading FunnyNet-W")
    model = _model(str(checkpoint))
    subs = []
    if subtitles:
        subs = read_subtitles(subtitles, video_id=video.stem)
        check_against_duration(subs, media_duration(video), Path(subtitles).name)
    step(0.2, "detecting laughter")
    laughter = laughter_events([video])[0].laughter
    step(0.4, "scoring windows")
    config = DetectConfig(stride=stride) if threshold is None else DetectConfig(stride=stride, threshold=threshold)
    threshold = config.threshold
    times, scores, moments = funny_moments(video, model, subs, config, laughter)
    step(1.0, "done")
    return HumorResult(video, times, scores, moments, list(laughter), threshold, model.config.modalities,
                       time.perf_counter() - t0)


def cut_clips(result: HumorResult, out_dir: str | Path, k: int = 3) -> list[Path]:
    """Write the window of each of the ``k`` best moments as its own mp4 (frames + audio), best first."""
    from storylab.humor.media import load_audio, load_frames, media_duration, write_video

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    duration = media_duration(result.video)
    audio = load_audio(result.video)
    clips = []
    for rank, m in enumerate(result.top(k), start=1):
        start, end = max(0.0, m.start), min(duration, m.end + 1.0)  # a second more: the laugh that follows
        frames = load_frames(result.video, fps=10, start=start, end=end)
        a = audio.samples[:, int(start * audio.sample_rate):int(end * audio.sample_rate)]
        path = out / f"moment_{rank}_{m.time:.0f}s.mp4"
        write_video(path, list(frames.images), 10, a, audio.sample_rate)
        clips.append(path)
    result.clips = clips
    return clips


def timeline(path: str | Path, result: HumorResult, title: str | None = None) -> Path:
    """The funny-moment timeline (P(funny), threshold, moments, detected laughter shaded) as a PNG."""
    from storylab.humor.detect import timeline_plot

    return timeline_plot(path, result.times, result.scores, result.moments, result.laughter, result.threshold,
                         title or f"{result.video.name}: FunnyNet-W ({result.modalities.upper()}), "
                                  f"{len(result.moments)} funny moment(s)")
