"""Bench: word error rate of the offline ASR (PocketSphinx, bundled en-US models) on Debian's LibriVox utterances.

FunnyNet-W reads Whisper transcripts when there are no subtitles; storylab's default offline recogniser
is PocketSphinx. This prints the WER per utterance and pooled over the five LibriVox utterances of
pocketsphinx-testdata (storylab's WER, cross-checked against torchmetrics'), and the real-time factor.

    .venv/bin/python bench/humor_asr.py [--whisper PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from storylab.humor.asr import pocketsphinx_lines, whisper_lines, word_error_rate  # noqa: E402
from storylab.humor.media import load_audio  # noqa: E402

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whisper", type=Path, default=None, help="also measure a local Whisper folder")
    args = parser.parse_args()
    if not LIBRIVOX.is_dir():
        raise SystemExit(f"error: {LIBRIVOX} is missing: apt-get install pocketsphinx-testdata")
    refs = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line)
        if m:
            refs[m.group(2)] = m.group(1)
    systems = {"pocketsphinx": pocketsphinx_lines}
    if args.whisper is not None:
        systems[f"whisper ({args.whisper.name})"] = lambda a: whisper_lines(a, args.whisper)
    from torchmetrics.functional.text import word_error_rate as tm_wer

    for name, recognise in systems.items():
        recognise(load_audio(next(iter(sorted(LIBRIVOX.glob("*.wav"))))).mono()[:16_000])  # load the models once
        hyps, seconds, audio_s = [], 0.0, 0.0
        for stem in sorted(refs):
            audio = load_audio(LIBRIVOX / f"{stem}.wav").mono()
            t0 = time.process_time()
            hyp = " ".join(w.text for w in recognise(audio))
            seconds += time.process_time() - t0
            audio_s += len(audio) / 16_000
            hyps.append(hyp)
            print(f"{name}  {stem}: WER {word_error_rate(refs[stem], hyp):.3f}  | {hyp}")
        ref_words = sum(len(r.split()) for r in refs.values())
        pooled = sum(word_error_rate(r, h) * len(r.split()) for r, h in zip([refs[s] for s in sorted(refs)], hyps)) / ref_words
        check = float(tm_wer(hyps, [refs[s] for s in sorted(refs)]))
        print(f"{name}: pooled WER {pooled:.3f} over {len(refs)} utterances, {ref_words} words "
              f"(torchmetrics: {check:.3f}); {audio_s / seconds:.2f}x real time per core")


if __name__ == "__main__":
    main()
