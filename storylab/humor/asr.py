"""Speech recognition as FunnyNet-W's text source when a video has no subtitles.

FunnyNet-W (Liu, Courant, Kalogeiton, IJCV 2024, Sec. 3.2) transcribes every clip with Whisper instead
of reading subtitles. Offline, two recognisers are offered: PocketSphinx (the ``pocketsphinx`` wheel
ships its en-US acoustic model, language model and dictionary, so nothing is downloaded; the default)
and a local Whisper folder through transformers' speech-recognition pipeline (``whisper:PATH``). Both
return timed lines (PocketSphinx: one per word; Whisper: one per timestamped chunk), which the clip
windows join exactly as they join subtitle lines.
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from storylab.errors import StorylabError
from storylab.subtitles import Subtitle

SAMPLE_RATE = 16_000
_FILLERS = re.compile(r"^(<s>|</s>|<sil>|\[.*\]|\+\+.*\+\+)$")


def parse_asr(value: str) -> tuple[str, Path | None]:
    """``pocketsphinx`` | ``whisper:PATH`` | ``none`` -> (backend, model folder)."""
    text = value.strip()
    if text in ("pocketsphinx", "none"):
        return text, None
    if text.startswith("whisper:") and len(text) > len("whisper:"):
        folder = Path(text[len("whisper:"):])
        if not (folder / "config.json").exists():
            raise StorylabError(f"Whisper folder not found or has no config.json: {folder}")
        return "whisper", folder
    raise StorylabError(f"unknown --asr '{value}' (use pocketsphinx, whisper:PATH to a local Whisper folder, or none)")


def _pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@lru_cache(maxsize=1)
def _decoder(sample_rate: int):
    from pocketsphinx import Decoder

    return Decoder(samprate=sample_rate, loglevel="FATAL")  # the bundled en-US model, language model and dictionary


def pocketsphinx_lines(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Subtitle]:
    """Transcribe 16 kHz mono audio with PocketSphinx's bundled en-US models: one timed line per word.

    Speech is cut into utterances by PocketSphinx's own voice-activity segmenter, and each utterance is
    decoded with the n-gram language model; fillers (silence, noise, sentence marks) are dropped and
    alternative pronunciations (``word(2)``) lose their suffix.
    """
    try:
        from pocketsphinx import Segmenter
    except ImportError as exc:
        raise StorylabError("--asr pocketsphinx needs the pocketsphinx package (pip install pocketsphinx)") from exc
    if sample_rate != SAMPLE_RATE:
        raise StorylabError(f"PocketSphinx reads 16 kHz audio, got {sample_rate} Hz")
    decoder = _decoder(sample_rate)
    frame_rate = decoder.config["frate"]
    lines: list[Subtitle] = []
    for segment in Segmenter(sample_rate=sample_rate).segment(io.BytesIO(_pcm16(audio))):
        decoder.start_utt()
        decoder.process_raw(segment.pcm, full_utt=True)
        decoder.end_utt()
        for word in decoder.seg():
            token = re.sub(r"\(\d+\)$", "", word.word)
            if _FILLERS.match(token):
                continue
            lines.append(Subtitle(segment.start_time + word.start_frame / frame_rate,
                                  segment.start_time + (word.end_frame + 1) / frame_rate, token))
    return lines


def whisper_lines(audio: np.ndarray, folder: str | Path, sample_rate: int = SAMPLE_RATE,
                  max_new_tokens: int = 128) -> list[Subtitle]:
    """Transcribe 16 kHz mono audio with a local Whisper folder (transformers pipeline, 30 s chunks, timestamps)."""
    from transformers import pipeline

    try:
        asr = pipeline("automatic-speech-recognition", model=str(folder), device="cpu", chunk_length_s=30)
    except (OSError, ValueError) as exc:
        raise StorylabError(f"cannot load the Whisper model in {folder} ({type(exc).__name__}: {exc})") from exc
    limit = int(getattr(asr.model.config, "max_target_positions", 448)) - 8  # room for the start and task tokens
    out = asr({"raw": audio.astype(np.float32), "sampling_rate": sample_rate}, return_timestamps=True,
              generate_kwargs={"max_new_tokens": min(max_new_tokens, limit)})
    duration = len(audio) / sample_rate
    lines = []
    for chunk in out.get("chunks", []) or [{"text": out.get("text", ""), "timestamp": (0.0, duration)}]:
        start, end = chunk.get("timestamp", (0.0, duration))
        start = 0.0 if start is None else float(start)
        end = duration if end is None else float(end)
        text = str(chunk.get("text", "")).strip()
        if text:
            lines.append(Subtitle(start, max(end, start), text))
    return lines


def transcriber(value: str) -> tuple[Callable[[np.ndarray], list[Subtitle]] | None, str]:
    """The recogniser named by ``--asr`` as a function of 16 kHz mono audio, and its name for the output."""
    backend, folder = parse_asr(value)
    if backend == "none":
        return None, "none"
    if backend == "pocketsphinx":
        return pocketsphinx_lines, "PocketSphinx (en-US)"
    return (lambda audio: whisper_lines(audio, folder)), f"Whisper ({folder.name})"


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference length, lower-cased, punctuation dropped.

    Written out rather than taken from torchmetrics because its text metrics add seconds of imports to a
    command that needs ten lines of dynamic programming (bench/humor_asr.py checks it against torchmetrics).
    """
    norm = lambda s: re.sub(r"[^a-z0-9' ]", " ", s.lower()).split()  # noqa: E731
    ref, hyp = norm(reference), norm(hypothesis)
    if not ref:
        return float(len(hyp) > 0)
    prev = list(range(len(hyp) + 1))  # distances from the empty reference prefix
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for k, h in enumerate(hyp, 1):
            cur[k] = min(prev[k] + 1, cur[k - 1] + 1, prev[k - 1] + (r != h))  # deletion, insertion, substitution
        prev = cur
    return prev[-1] / len(ref)


def transcribe_file(path: str | Path, recognise: Callable[[np.ndarray], list[Subtitle]]) -> list[Subtitle]:
    """Timed lines of a media file's speech: its mono mix at 16 kHz through ``recognise``."""
    from storylab.humor.media import load_audio

    return recognise(load_audio(path, SAMPLE_RATE).mono())
