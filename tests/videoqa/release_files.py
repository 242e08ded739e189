"""Small files in the exact layouts the SFD / SF20K authors release, with a few rows of their original text.

Rows come from ridouaneg/sf20k (``data/gt_samples.csv``, ``data/test_subtitles.csv``,
``scripts/submission.csv``); the film ``-abc`` reuses original lines under an id that starts with
``-`` (real ids such as ``_ZrahHexT3M`` start with ``_``). The Hugging Face export adds options.
"""

from __future__ import annotations

import csv
from pathlib import Path

OEQA_HEADER = ["question_id", "video_id", "question", "answer"]
OEQA_ROWS = [  # sf20k data/gt_samples.csv
    ["X66nawgM_G0_02", "X66nawgM_G0", "Who are the main characters?", "A man and a woman."],
    ["GBrKM_e8ZoI_03", "GBrKM_e8ZoI", "What is Zoe doing in the toilets?", "She re-does her makeup."],
    ["_ZrahHexT3M_17", "_ZrahHexT3M", "What is the mood of the final scene?", "Sadness and vulnerability."],
    ["_ZrahHexT3M_08", "_ZrahHexT3M", "What does the protagonist look like in her second identity?",
     "She has a classic, conservative style, with glasses, a blouse, and a suit jacket."],
    ["-abc_03", "-abc", "Where does the movie take place?", "In a city."],
]

WHISPER_HEADER = ["subtitle_nb", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                  "compression_ratio", "no_speech_prob", "words", "video_id", "language", "library", "model", "task",
                  "diarize", "subtitle_id"]
_TAIL = ["en", "whisper", "large-v3-turbo", "translate", "False"]
WHISPER_ROWS = [  # sf20k data/test_subtitles.csv (the multi-line tokens cell as released)
    ["1", "3000", "30.0", "38.0", " I'm going to the bathroom.", "[50365   286   478   516   281   264  8687    13 50765]",
     "0.2", "-0.3678770065307617", "1.264367816091954", "5.8799388968910896e-12", "", "GBrKM_e8ZoI", *_TAIL, "GBrKM_e8ZoI_1"],
    ["2", "3000", "38.0", "40.0", " What? I'm going to the bathroom.",
     "[50765   708    30   286   478   516   281   264  8687    13 50865]", "0.2", "-0.3678770065307617",
     "1.264367816091954", "5.8799388968910896e-12", "", "GBrKM_e8ZoI", *_TAIL, "GBrKM_e8ZoI_2"],
    ["1", "3000", "30.0", "60.0", " It's like candy in my veins Baby, I'm dying for another taste And every night my mind is running around her",
     "[50365   467   311   411 11237   294   452 29390  9425    11   286   478\n  8639   337  1071  3939   400   633  1818   452  1575   307  2614   926\n   720]",
     "0.0", "-0.636941176194411", "1.1382978723404256", "1.545121530721616e-10", "", "-abc", *_TAIL, "-abc_1"],
    ["1", "3000", "150.0", "155.0", " I can't let you go now that I got it.", "[50365   286   393   380]", "0.0",
     "-0.2", "1.1", "1e-10", "", "X66nawgM_G0", *_TAIL, "X66nawgM_G0_1"],
]

MERGED_HEADER = ["video_id", "start", "end", "text", "no_speech_prob"]  # SFD data_prep/merge_subtitles.py

SUBMISSION_HEADER = ["question_id", "video_id", "video_url", "question", "prediction"]
SUBMISSION_ROWS = [  # sf20k scripts/submission.csv
    ["X66nawgM_G0_02", "X66nawgM_G0", "https://www.youtube.com/watch?v=X66nawgM_G0", "Who are the main characters?",
     "The main characters are a man and a woman."],
    ["GBrKM_e8ZoI_03", "GBrKM_e8ZoI", "https://www.youtube.com/watch?v=GBrKM_e8ZoI", "What is Zoe doing in the toilets?",
     "Taking selfies"],
    ["_ZrahHexT3M_17", "_ZrahHexT3M", "https://www.youtube.com/watch?v=_ZrahHexT3M", "What is the mood of the final scene?",
     "Sad"],
]

HF_HEADER = ["question_id", "video_id", "video_url", "question", "answer", "option_0", "option_1", "option_2",
             "option_3", "option_4", "correct_answer", "correct_letter"]
HF_ROWS = [  # three MCQA rows and two open-ended rows (empty options, empty correct_answer)
    ["-abc_01", "-abc", "https://www.youtube.com/watch?v=-abc", "Where does the movie take place?", "In a city.",
     "In a forest.", "In a city.", "On a boat.", "In a desert.", "In a castle.", "1", "B"],
    ["_x_01", "_x", "https://www.youtube.com/watch?v=_x", "Who are the main characters?", "A man and a woman.",
     "Two children.", "A man and a woman.", "A dog and a cat.", "Three soldiers.", "An old couple.", "1", "B"],
    ["_x_02", "_x", "https://www.youtube.com/watch?v=_x", "What is the mood of the final scene?",
     "Sadness and vulnerability.", "Sadness.", "Joy.", "Anger.", "Boredom.", "Fear.", "0", "A"],
    ["-abc_02", "-abc", "https://www.youtube.com/watch?v=-abc", "What is Zoe doing in the toilets?",
     "She re-does her makeup.", "", "", "", "", "", "", ""],
    ["_x_03", "_x", "https://www.youtube.com/watch?v=_x", "Where is the first part they retrieve?",
     "The man's painting studio.", "", "", "", "", "", "", ""],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path
