"""Helpers of the Video QA tests: a tiny SFD set written to tmp_path, and a small video."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

HEADER = ["question_id", "video_id", "video_url", "question", "answer", "option_0", "option_1", "option_2",
          "option_3", "option_4", "correct_answer"]


def write_questions(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(rows)
    return path


def question_row(qid: str, video: str = "film", correct: int = 2) -> list:
    return [qid, video, "", f"What happens in {qid}?", f"Answer of {qid}.", "apples", "boats", "clocks", "doors",
            "eagles", correct]


def write_video(path: Path, num_frames: int = 20, fps: int = 10, size: int = 32) -> Path:
    """A tiny H.264 film whose frame i has grey level 10 * i (so tests can tell frames apart)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "0"}
        for i in range(num_frames):
            img = np.full((size, size, 3), 10 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def tiny_set(tmp_path: Path) -> dict[str, Path]:
    """Four questions about one film, its subtitles CSV and its video."""
    q = write_questions(tmp_path / "questions.csv", [question_row(f"film_{i:02d}", correct=i % 5) for i in range(4)])
    subs = tmp_path / "subtitles.csv"
    subs.write_text("text,start,end,speaker,video_id\n"
                    "The clocks all stopped at noon.,1.0,3.0,SPEAKER_00,film\n"
                    "We sailed the boats at dawn.,4.0,6.5,SPEAKER_01,film\n")
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "film.mp4")
    return {"questions": q, "subtitles": subs, "videos": videos, "root": tmp_path}
