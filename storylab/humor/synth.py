"""A synthetic sitcom with a real laugh track: mp4 episodes, stereo audio, SRT subtitles, saved ground truth.

Built to exercise FunnyNet-W's pipeline (Liu, Courant, Kalogeiton, IJCV 2024) end to end on media a
codec has touched: dialogue is espeak-ng speech mixed equally into both channels (so L - R cancels
it), punchlines are answered by crowd laughter made of many overlapping, pitch-varied, reverberated
laugh syllables panned unevenly (so L - R keeps it), stereo music stingers between scenes act as
distractors for the music cluster, and the frames show characters whose gestures carry a weak cue.
Punchlines are delivered with the prosody the lectures name (higher pitch, a pause, slower rate);
some plain lines get the same prosody or gesture, so no single cue is perfect. The ground-truth
laughter intervals go to ``truth/`` and are never read by the detector.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from storylab.errors import StorylabError
from storylab.humor.jokes import JOKES, NEUTRAL_LINES
from storylab.humor.media import SAMPLE_RATE, write_video
from storylab.io import atomic_write_json
from storylab.subtitles import Subtitle, write_srt


@dataclass
class SynthConfig:
    """Settings of the synthetic sitcom (the CLI fills it)."""

    episodes: int = 4
    duration: float = 120.0        # s of dialogue per episode (the last exchange may run a little over)
    scenes: int = 2                # scenes per episode, each opened by a music stinger (stingers must stay rarer than laughs)
    fps: int = 10
    width: int = 160
    height: int = 120
    joke_share: float = 0.6        # share of exchanges that end in a punchline
    prosody_cue: float = 0.85      # probability a punchline gets the raised pitch, pause and slow rate
    prosody_false: float = 0.15    # probability a plain line gets it anyway
    gesture_cue: float = 0.65      # probability the punchline speaker gestures (weak visual cue)
    gesture_false: float = 0.2     # probability a plain line gets a gesture
    laugh_seconds: tuple[float, float] = (2.2, 4.5)
    laugh_voices: tuple[int, int] = (10, 22)
    big_laugh_share: float = 0.5   # share of laughs with applause (chuckles otherwise)
    seed: int = 0


@dataclass
class Character:
    """A cast member: name, espeak-ng voice, base pitch, shirt colour."""

    name: str
    voice: str
    pitch: int
    colour: tuple[int, int, int]


CAST = (
    Character("ALEX", "en-us+m3", 45, (200, 60, 60)),
    Character("BELLA", "en-us+f2", 55, (60, 120, 210)),
    Character("CHARLIE", "en-gb+m1", 40, (70, 170, 80)),
    Character("DANA", "en-us+f4", 50, (220, 170, 40)),
)
BACKGROUNDS = ((235, 220, 190), (190, 215, 235), (225, 200, 225), (205, 230, 200))


@dataclass
class Line:
    """A spoken line on the timeline."""

    start: float
    end: float
    speaker: int
    text: str
    gesture: bool
    punchline: bool


@dataclass
class Episode:
    """What was generated for one episode (everything the ground truth file records)."""

    name: str
    duration: float
    lines: list[Line] = field(default_factory=list)
    laughter: list[tuple[float, float]] = field(default_factory=list)
    music: list[tuple[float, float]] = field(default_factory=list)
    scenes: list[tuple[float, float, tuple[int, int]]] = field(default_factory=list)


def require_espeak() -> str:
    """Path of espeak-ng, or a clear error saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise StorylabError("espeak-ng is not installed; the synthetic sitcom needs it for speech: "
                            "sudo apt-get install espeak-ng (Debian/Ubuntu) or brew install espeak-ng (macOS)")
    return exe


def speak(text: str, voice: str, pitch: int, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise speech with espeak-ng and return mono float32 audio at ``sample_rate``."""
    from scipy.signal import resample_poly

    exe = require_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "line.wav"
        proc = subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", str(rate), "-w", str(out), text],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise StorylabError(f"espeak-ng failed for voice {voice}: {proc.stderr.strip() or 'no output'}")
        with wave.open(str(out)) as w:
            sr = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    audio = pcm.astype(np.float32) / 32768.0
    if sr != sample_rate:
        from math import gcd
        g = gcd(sr, sample_rate)
        audio = resample_poly(audio, sample_rate // g, sr // g).astype(np.float32)
    # trim espeak's leading/trailing silence so line times are tight
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    if len(loud):
        audio = audio[max(0, loud[0] - 160):loud[-1] + 800]
    return audio


def _reverb(x: np.ndarray, rng: np.random.Generator, sample_rate: int, decay: float) -> np.ndarray:
    from scipy.signal import fftconvolve

    n = int(0.5 * sample_rate)
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-np.arange(n) / (decay * sample_rate)).astype(np.float32)
    ir /= np.sqrt((ir ** 2).sum())
    wet = fftconvolve(x, ir[None, :], axes=-1)[:, :x.shape[1]]
    return (0.75 * x + 0.35 * wet).astype(np.float32)


def applause(duration: float, rng: np.random.Generator, clappers: int = 25, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Crowd applause (2, N): many clappers, each a train of short band-limited noise bursts, spread in stereo."""
    from scipy.signal import butter, sosfilt

    n = int(duration * sample_rate)
    out = np.zeros((2, n), dtype=np.float32)
    sos = butter(2, [800, 4000], btype="band", fs=sample_rate, output="sos")
    clap_len = int(0.012 * sample_rate)
    shape = np.exp(-np.arange(clap_len) / (0.003 * sample_rate)).astype(np.float32)
    for _ in range(clappers):
        t = rng.uniform(0, 0.3)
        rate = rng.uniform(3.5, 6.0)
        pan = rng.uniform(-0.1, 0.6)
        train = np.zeros(n, dtype=np.float32)
        while t < duration - 0.05:
            s = int(t * sample_rate)
            train[s:s + clap_len] += shape[:len(train[s:s + clap_len])] * rng.uniform(0.5, 1.0)
            t += rng.normal(1.0 / rate, 0.015)
        clap = sosfilt(sos, train * rng.standard_normal(n).astype(np.float32)).astype(np.float32)
        out[0] += (0.5 + pan) * clap
        out[1] += (0.5 - pan) * clap
    fade = np.minimum(1.0, np.linspace(duration, 0, n) / (0.4 * duration)).astype(np.float32)
    return out * fade


def crowd_laughter(duration: float, rng: np.random.Generator, voices: tuple[int, int] = (10, 22),
                   with_applause: bool = False, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A canned laugh (2, N): many overlapping, pitch-varied laugh syllables, reverberated and panned unevenly.

    A big laugh (``with_applause``) adds crowd applause under the voices, as sitcom laugh tracks do.
    """
    n = int((duration + 0.6) * sample_rate)
    out = np.zeros((2, n), dtype=np.float32)
    count = int(rng.integers(voices[0], voices[1] + 1))
    for _ in range(count):
        f0 = rng.uniform(140, 420)
        period = rng.uniform(0.15, 0.27)
        t = rng.uniform(0.0, 0.35)
        stop = duration - rng.uniform(0.0, 0.7)
        voice = np.zeros(n, dtype=np.float32)
        k = 0
        total = max(1, int((stop - t) / period))
        while t < stop:
            length = int(period * rng.uniform(0.5, 0.75) * sample_rate)
            s = int(t * sample_rate)
            if s + length >= n:
                break
            tt = np.arange(length) / sample_rate
            f = f0 * (1.0 - 0.2 * k / total) * rng.uniform(0.93, 1.07) * (1.0 - 0.15 * tt / tt[-1])
            phase = 2 * np.pi * np.cumsum(f) / sample_rate
            syllable = np.zeros(length, dtype=np.float32)
            for h in range(1, 9):  # harmonics shaped by an "ah" vowel envelope (formants near 800 and 1200 Hz)
                weight = np.exp(-((h * f0 - 800) / 450) ** 2) + 0.6 * np.exp(-((h * f0 - 1250) / 500) ** 2) + 0.15
                syllable += (weight / h * np.sin(h * phase)).astype(np.float32)
            syllable += 0.25 * rng.standard_normal(length).astype(np.float32)  # breath
            env = np.minimum(1.0, tt / 0.015) * np.exp(-tt / (0.35 * period))
            voice[s:s + length] += syllable * env.astype(np.float32) * rng.uniform(0.6, 1.0)
            t += period * rng.uniform(0.85, 1.15)
            k += 1
        fade = np.ones(n, dtype=np.float32)
        tail = int(0.35 * duration * sample_rate)
        end = min(n, int(duration * sample_rate))
        fade[end - tail:end] = np.linspace(1.0, 0.35, tail)
        fade[end:] = 0.35
        voice *= fade
        pan = rng.uniform(-0.1, 0.5)  # mostly left of centre: L - R keeps the crowd
        out[0] += (0.5 + pan) * voice
        out[1] += (0.5 - pan) * voice
    if with_applause:
        claps = applause(duration, rng, int(rng.integers(15, 35)), sample_rate)
        out[:, :claps.shape[1]] += claps * (np.abs(out).max() / (np.abs(claps).max() + 1e-9)) * 0.8
    out = _reverb(out, rng, sample_rate, decay=0.08)
    return (out / (np.abs(out).max() + 1e-9) * rng.uniform(0.3, 0.42)).astype(np.float32)


def show_theme(seed: int) -> tuple[float, tuple[int, ...]]:
    """The show's signature riff (root frequency, arpeggio steps): every stinger of a show replays it."""
    rng = np.random.default_rng([seed, 999])
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    return root, ((0, 4, 7, 12) if rng.random() < 0.5 else (0, 3, 7, 10))


def music_stinger(duration: float, rng: np.random.Generator, theme: tuple[float, tuple[int, ...]] = (110.0, (0, 4, 7, 12)),
                  sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A sitcom scene-change stinger (2, N): the show's riff, bass on the left, arpeggio on the right, a cymbal."""
    n = int(duration * sample_rate)
    t = np.arange(n) / sample_rate
    root, steps = theme
    root *= 2 ** (int(rng.integers(-1, 2)) / 12)  # small variations between scenes
    note = duration / len(steps)
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    for i, st in enumerate(steps):
        s, e = int(i * note * sample_rate), int((i + 1) * note * sample_rate)
        tt = t[s:e] - t[s]
        env = np.minimum(1, tt / 0.01) * np.exp(-tt / (0.6 * note))
        f = root * 2 * 2 ** (st / 12)
        right[s:e] += (env * sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 7))).astype(np.float32)
    env = np.minimum(1, t / 0.02) * np.exp(-t / (0.5 * duration))
    left += (env * sum(np.sin(2 * np.pi * root / 2 * h * t) / h ** 1.5 for h in range(1, 5))).astype(np.float32)
    cymbal = rng.standard_normal(n).astype(np.float32) * np.exp(-t / 0.25).astype(np.float32)
    cymbal = np.diff(cymbal, prepend=0.0).astype(np.float32)  # bright
    right += 0.3 * cymbal
    out = np.stack([left, right])
    out[:, -int(0.05 * sample_rate):] *= np.linspace(1, 0, int(0.05 * sample_rate))
    return (out / (np.abs(out).max() + 1e-9) * 0.35).astype(np.float32)


def plan_episode(name: str, config: SynthConfig, rng: np.random.Generator) -> tuple[Episode, list[tuple[float, np.ndarray]]]:
    """Write the episode's script on a timeline and render its audio pieces (start time, (2, N) audio)."""
    ep = Episode(name=name, duration=0.0)
    pieces: list[tuple[float, np.ndarray]] = []
    jokes = list(rng.permutation(len(JOKES)))
    plain = list(rng.permutation(len(NEUTRAL_LINES)))
    t = 0.0
    per_scene = config.duration / config.scenes

    def say(text: str, who: int, cue_prosody: bool, gesture: bool, punch: bool, start: float) -> float:
        c = CAST[who]
        pitch, rate = (c.pitch + 30, 125) if cue_prosody else (c.pitch, 165)
        audio = speak(text, c.voice, pitch, rate)
        pieces.append((start, np.stack([audio, audio]) * 0.5))  # equal in both channels: L - R cancels it
        end = start + len(audio) / SAMPLE_RATE
        ep.lines.append(Line(start, end, who, text, gesture, punch))
        return end

    for scene in range(config.scenes):
        length = float(rng.uniform(1.5, 2.6))
        pieces.append((t, music_stinger(length, rng, show_theme(config.seed))))
        ep.music.append((t, t + length))
        t += length + 0.4
        pair = tuple(int(i) for i in rng.choice(len(CAST), size=2, replace=False))
        scene_start, scene_end = t, (scene + 1) * per_scene
        while t < scene_end - 4.0:
            a, b = (pair if rng.random() < 0.5 else pair[::-1])
            if rng.random() < config.joke_share and jokes:
                setup, punch = JOKES[jokes.pop()]
                t = say(setup, a, False, rng.random() < config.gesture_false, False, t) + rng.uniform(0.3, 0.6)
                cue = rng.random() < config.prosody_cue
                t += 0.5 if cue else 0.0  # the pause before the punchline
                t = say(punch, b, cue, rng.random() < config.gesture_cue, True, t)
                onset = t + float(rng.uniform(0.15, 0.4))
                dur = float(rng.uniform(*config.laugh_seconds))
                big = rng.random() < config.big_laugh_share
                voices = config.laugh_voices if big else (max(3, config.laugh_voices[0] // 2), max(4, config.laugh_voices[1] // 2))
                pieces.append((onset, crowd_laughter(dur, rng, voices, with_applause=big)))
                ep.laughter.append((onset, onset + dur))
                t = onset + dur - 0.2
            else:
                for j in range(int(rng.integers(2, 4))):
                    if not plain:
                        plain = list(rng.permutation(len(NEUTRAL_LINES)))
                    who = (a, b)[j % 2]
                    t = say(NEUTRAL_LINES[plain.pop()], who, rng.random() < config.prosody_false,
                            rng.random() < config.gesture_false, False, t) + rng.uniform(0.3, 0.7)
            t += rng.uniform(0.3, 0.8)
        ep.scenes.append((scene_start, t, pair))
        t += float(rng.uniform(1.0, 1.6))  # a beat of room tone before the next stinger
    ep.duration = t + 1.0
    return ep, pieces


def mix(pieces: list[tuple[float, np.ndarray]], duration: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Sum the audio pieces onto a stereo timeline (2, N) with a faint room tone, limited to [-1, 1]."""
    n = int(duration * sample_rate)
    out = np.zeros((2, n), dtype=np.float32)
    for start, audio in pieces:
        s = int(start * sample_rate)
        e = min(n, s + audio.shape[1])
        out[:, s:e] += audio[:, :e - s]
    room = np.random.default_rng(1).standard_normal(n).astype(np.float32) * 1e-3
    out += room[None, :]  # identical in both channels
    return np.clip(out, -1.0, 1.0)


def _draw_character(img: np.ndarray, x: int, c: Character, talking: bool, mouth_open: bool, gesture: bool) -> None:
    import cv2

    h = img.shape[0]
    s = h / 120.0
    head_y, body_top = int(50 * s), int(66 * s)
    cv2.rectangle(img, (x - int(14 * s), body_top), (x + int(14 * s), h), c.colour, -1)
    skin = (240, 200, 170)
    if gesture:  # both arms raised
        cv2.line(img, (x - int(14 * s), body_top + 4), (x - int(26 * s), body_top - int(22 * s)), c.colour, max(2, int(5 * s)))
        cv2.line(img, (x + int(14 * s), body_top + 4), (x + int(26 * s), body_top - int(22 * s)), c.colour, max(2, int(5 * s)))
    else:
        cv2.line(img, (x - int(14 * s), body_top + 4), (x - int(20 * s), body_top + int(30 * s)), c.colour, max(2, int(5 * s)))
        cv2.line(img, (x + int(14 * s), body_top + 4), (x + int(20 * s), body_top + int(30 * s)), c.colour, max(2, int(5 * s)))
    cv2.circle(img, (x, head_y), int(15 * s), skin, -1)
    eye_y = head_y - int((6 if gesture else 4) * s)  # raised eyebrows lift the eyes' brows
    for dx in (-5, 5):
        cv2.circle(img, (x + int(dx * s), head_y - int(3 * s)), max(1, int(2 * s)), (30, 30, 30), -1)
        cv2.line(img, (x + int((dx - 3) * s), eye_y - int(3 * s)), (x + int((dx + 3) * s), eye_y - int(3 * s)), (60, 40, 20), 1)
    mouth_y = head_y + int(7 * s)
    if gesture:
        cv2.ellipse(img, (x, mouth_y - int(2 * s)), (int(7 * s), int(5 * s)), 0, 0, 180, (120, 20, 30), -1)
    elif talking and mouth_open:
        cv2.ellipse(img, (x, mouth_y), (int(4 * s), int(3 * s)), 0, 0, 360, (120, 20, 30), -1)
    else:
        cv2.line(img, (x - int(5 * s), mouth_y), (x + int(5 * s), mouth_y), (120, 20, 30), 1)


def render_frames(ep: Episode, config: SynthConfig):
    """Yield the episode's RGB frames: scene backgrounds, two characters, the speaker animated, title cards."""
    import cv2

    n = int(ep.duration * config.fps)
    for i in range(n):
        t = i / config.fps
        img = np.zeros((config.height, config.width, 3), dtype=np.uint8)
        card = next((m for m in ep.music if m[0] <= t < m[1]), None)
        if card is not None:
            img[:] = (40, 30, 90)
            cv2.putText(img, "storylab", (int(0.18 * config.width), config.height // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        config.width / 320, (250, 230, 120), 1, cv2.LINE_AA)
            yield img
            continue
        k = next((j for j, sc in enumerate(ep.scenes) if sc[0] - 1.0 <= t < sc[1] + 1.0), len(ep.scenes) - 1)
        pair = ep.scenes[k][2] if ep.scenes else (0, 1)
        img[:] = BACKGROUNDS[k % len(BACKGROUNDS)]
        img[int(0.8 * config.height):] = (120, 90, 70)  # floor
        line = next((ln for ln in ep.lines if ln.start <= t < ln.end), None)
        for slot, who in enumerate(pair):
            x = int(config.width * (0.3 if slot == 0 else 0.7))
            talking = line is not None and line.speaker == who
            _draw_character(img, x, CAST[who], talking, (i % 2 == 0), talking and line.gesture)
        yield img


def synth_episode(out_dir: Path, index: int, config: SynthConfig) -> Episode:
    """Generate one episode: ``episode_XXX.mp4``, ``episode_XXX.srt`` and ``truth/episode_XXX.json``."""
    rng = np.random.default_rng([config.seed, index])
    name = f"episode_{index:03d}"
    ep, pieces = plan_episode(name, config, rng)
    audio = mix(pieces, ep.duration)
    write_srt(out_dir / f"{name}.srt", [Subtitle(ln.start, ln.end, ln.text, CAST[ln.speaker].name) for ln in ep.lines])
    write_video(out_dir / f"{name}.mp4", render_frames(ep, config), config.fps, audio)
    atomic_write_json(out_dir / "truth" / f"{name}.json", {
        "episode": name, "duration": ep.duration,
        "laughter": [{"start": round(s, 3), "end": round(e, 3)} for s, e in ep.laughter],
        "music": [{"start": round(s, 3), "end": round(e, 3)} for s, e in ep.music],
        "lines": [{"start": round(ln.start, 3), "end": round(ln.end, 3), "speaker": CAST[ln.speaker].name,
                   "text": ln.text, "punchline": ln.punchline, "gesture": ln.gesture} for ln in ep.lines],
        "note": "ground truth of the synthetic sitcom; never read by the laughter detector",
    })
    return ep


def synth_sitcom(out_dir: str | Path, config: SynthConfig = SynthConfig(), progress: bool = True) -> list[Episode]:
    """Generate ``config.episodes`` episodes into ``out_dir`` (see the module docstring)."""
    from storylab.training.progress import progress_bar

    require_espeak()
    if config.episodes < 1:
        raise StorylabError(f"--episodes must be at least 1, got {config.episodes}")
    if config.duration < 20:
        raise StorylabError(f"--duration must be at least 20 s (a scene needs room for a joke), got {config.duration}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StorylabError(f"output path exists and is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    episodes = []
    with progress_bar("synthesising episodes", total=config.episodes, enabled=progress) as bar:
        for i in range(1, config.episodes + 1):
            episodes.append(synth_episode(out, i, config))
            bar.advance()
    atomic_write_json(out / "synth.json", {"config": asdict(config), "episodes": [e.name for e in episodes]})
    return episodes
