"""The fuzz table: every command x every class of bad input, through the real entry point.

Each row is a command line that must fail cleanly: a non-zero exit code, exactly one line on stderr
that starts with ``error:`` and names the problem, no traceback, no "internal error" (an exception
the boundary did not recognise), no file or folder left behind in the work folder, and an answer
within :data:`ROW_SECONDS`. Numeric rows are generated from the command tree (nan, below and above
each option's range), so a new option or command is covered as soon as it has a row in
``storylab/cli_types.py``; path rows are the table :func:`path_rows` below: add a row for a new
command. The counts are printed at the end of each test (run with ``-s`` to see them).
"""

from __future__ import annotations

import math
import pickle
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from tests.cli_runner import run_cli

ROW_SECONDS = 60  # generous: a bad input is refused in well under a second on a quiet machine


class Hang(BaseException):
    """Raised by the alarm when a row runs past ROW_SECONDS (not an Exception: the CLI must not catch it)."""


def _snapshot(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


class Malicious:
    """A pickle that, if loaded by torch.load(weights_only=False), creates a file: it must never be loaded."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A work folder with the inputs the rows need: valid ones and broken ones of every kind."""
    from PIL import Image

    root = tmp_path_factory.mktemp("fuzz")
    (root / "afile").write_text("a regular file\n")
    (root / "adir").mkdir()
    rng = np.random.default_rng(0)
    for ext in (".safetensors", ".png", ".npy", ".txt", ".json", ".jsonl", ".csv", ".mp4", ".wav", ".srt", ".pt"):
        (root / f"garbage{ext}").write_bytes(rng.integers(0, 256, 512, dtype=np.uint8).tobytes())
    (root / "empty.npy").write_bytes(b"")
    np.save(root / "char.npy", np.stack([np.linspace(0, 1, 40), np.zeros(40), np.full(40, 3.0)], 1))
    poses = "\n".join(f"1 0 0 {0.05 * i:.3f} 0 1 0 0 0 0 1 0" for i in range(40))
    (root / "traj.txt").write_text(poses + "\n")
    Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8)).save(root / "img.png")
    cue = "1\n00:00:01,000 --> 00:00:02,000\ncaf\u00e9 cr\u00e8me\n"
    (root / "latin1.srt").write_bytes(cue.encode("latin-1"))
    (root / "utf16.srt").write_bytes(cue.encode("utf-16-le"))
    (root / "latin1.csv").write_bytes(("text,start,end,speaker,video_id\n"
                                       "caf\u00e9,1,2,A,v1\n").encode("latin-1"))
    # resume states that do not belong to the run: a pickle that would run code, a state of another command
    from storylab.training import state_path_for

    with open(state_path_for(root / "mal.safetensors"), "wb") as f:
        pickle.dump(Malicious(root / "PWNED"), f)
    with open(root / "old.state.pt", "wb") as f:  # the legacy name of a resume state, holding the same pickle
        pickle.dump(Malicious(root / "PWNED"), f)
    _foreign_state(state_path_for(root / "foreign.safetensors"))
    (root / "bomb.png").write_bytes(_png_header(20_000, 20_000))  # 400 megapixels claimed, 60 bytes on disk
    # a checkpoint whose storylab metadata is not JSON
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(root / "badmeta.safetensors"),
              metadata={"storylab.format": "1", "storylab.kind": "digits-denoiser", "storylab.config": "{not json"})
    return root


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (signature, IHDR, an empty IDAT, IEND)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _foreign_state(path: Path) -> None:
    """A genuine resume state, written by the loop, of another command ('train scalar')."""
    import torch
    from torch import nn

    from storylab.training import TrainConfig, train

    model = nn.Linear(1, 1)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(4, 1)), batch_size=2)
    train(model, lambda m, b: m(b[0]).sum(), loader, TrainConfig(steps=2, checkpoint_every=1, progress=False),
          state_path=path, description="train scalar")


def _run_row(argv: list[str]) -> tuple[str, object]:
    """Run one row under an alarm; returns (outcome, result) with outcome clean | traceback | hang | exit0 | lines."""
    def on_alarm(signum, frame):
        raise Hang()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(ROW_SECONDS)
    try:
        result = run_cli(*argv)
    except Hang:
        return "hang", None
    except BaseException as exc:  # noqa: BLE001 - anything escaping main() is a traceback for the user
        return "traceback", f"{type(exc).__name__}: {exc}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = result.stderr.strip().splitlines()
    if result.returncode == 0:
        return "exit0", result
    if "Traceback" in result.stderr or any("internal error" in line for line in lines):
        return "traceback", result
    if len(lines) != 1 or not lines[0].startswith("error: "):
        return "lines", result
    return "clean", result


def _check(rows: list[tuple[str, list[str], str | None]], root: Path, label: str) -> None:
    counts = {"clean": 0, "traceback": 0, "hang": 0, "exit0": 0, "lines": 0, "leftover": 0, "wrong message": 0}
    failures, seconds = [], []
    for name, argv, needle in rows:
        before = _snapshot(root)
        t0 = time.perf_counter()
        outcome, result = _run_row([a.format(ws=root) for a in argv])
        seconds.append((time.perf_counter() - t0, name))
        left = sorted(str(p.relative_to(root)) for p in _snapshot(root) - before)
        for p in sorted(_snapshot(root) - before, key=lambda p: -len(p.parts)):  # clean up for the next row
            p.rmdir() if p.is_dir() else p.unlink()
        needles = (needle,) if isinstance(needle, str) else needle
        if outcome == "clean" and needles is not None and not any(n in result.stderr for n in needles):
            outcome = "wrong message"
        counts[outcome] += 1
        if left:
            counts["leftover"] += 1
        if outcome != "clean" or left:
            detail = result.stderr.strip()[-300:] if hasattr(result, "stderr") else result
            failures.append(f"{name}: {outcome}{' + leftover ' + str(left) if left else ''}: {detail}")
    print(f"\n{label}: {len(rows)} inputs tried, " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print("slowest rows: " + ", ".join(f"{name} {t:.1f} s" for t, name in sorted(seconds, reverse=True)[:6]))
    assert not failures, "\n".join(failures)


def _numeric_rows() -> list[tuple[str, list[str], str | None]]:
    """nan, just below and far above the range of every numeric option of every command."""
    from storylab.cli import command
    from storylab.cli_types import numeric_options, rule_for

    rows = []
    for path, param in numeric_options(command()):
        bound = rule_for(path, param)
        flag = [o for o in param.opts if o.startswith("--")][0]
        is_int = param.type_descriptor.annotation is int
        values = [] if is_int else ["nan", "inf"]
        if bound.lo is not None:
            values.append(str(int(bound.lo) if bound.lo_open else int(math.floor(bound.lo)) - 1) if is_int
                          else str(bound.lo if bound.lo_open else bound.lo - 1))
        if bound.hi is not None:
            values.append(str(int(bound.hi * 10 + 1)) if is_int else str(bound.hi * 10 + 1))
        if bound.multiple_of and bound.lo is not None:
            values.append(str(int(bound.lo) + 1))
        for value in values:
            rows.append((f"{path} {flag} {value}", [*path.split(), flag, value], f"Invalid value for '{flag}'"))
    return rows


def test_every_numeric_option_has_a_range():
    """A numeric option without a row in storylab/cli_types.py would reach a library unchecked."""
    from storylab.cli import command
    from storylab.cli_types import numeric_options, rule_for

    missing = [f"{path} {param.opts}" for path, param in numeric_options(command()) if rule_for(path, param) is None]
    assert not missing, "add a range to RULES or COMMAND_RULES in storylab/cli_types.py for: " + ", ".join(missing)


def test_every_numeric_option_refuses_nan_and_out_of_range_values(ws):
    _check(_numeric_rows(), ws, "numeric options")


MISSING, DIR, UNDER_FILE = "{ws}/missing/nothing", "{ws}/adir", "{ws}/afile/out"
TINY_DIGITS = ["--steps", "2", "--batch-size", "8", "--channels", "8", "--no-progress"]


def path_rows() -> list[tuple[str, list[str], str | None]]:
    """Command x {missing file, folder for a file, garbage file, unwritable output, existing-folder output,
    output equal to an input, wrong encoding, foreign or malicious resume state, ids with path separators}."""
    g = "{ws}/garbage"
    rows: list[tuple[str, list[str], str | None]] = []

    def add(name: str, *argv: str, needle: str | None = None) -> None:
        rows.append((name, list(argv), needle))

    # outputs: under a regular file (unwritable on any user, root included), an existing folder
    for cmd, ext in (("train digits", ".safetensors"), ("train classifier", ".safetensors"),
                     ("train features", ".safetensors"), ("train controlnet", ".safetensors"),
                     ("sample digits", ".png"), ("control extract canny {ws}/img.png", ".png"),
                     ("camera render {ws}/traj.txt", ".png"), ("camera generate a", ".txt"),
                     ("humor laughter {ws}/garbage.wav", ".json")):
        add(f"{cmd} --out under a file", *cmd.split(), "--out", UNDER_FILE + ext, needle="is a file, not a folder")
        # a command that checks the output's extension first says so instead: also one clear line
        add(f"{cmd} --out existing folder", *cmd.split(), "--out", DIR,
            needle=("existing folder", "must be a .safetensors file", "must end in", "cannot read garbage.wav"))
    for zoo in ("ae", "vae", "cvae", "vqvae", "gan", "ldm"):
        add(f"train {zoo} --out under a file", "train", zoo, "digits", "--out", UNDER_FILE + ".safetensors",
            needle="is a file, not a folder")
        add(f"sample {zoo} --checkpoint missing", "sample", zoo, "--checkpoint", MISSING + ".safetensors",
            needle="missing/nothing")
        add(f"sample {zoo} --checkpoint garbage", "sample", zoo, "--checkpoint", g + ".safetensors")
        add(f"sample {zoo} --out existing file", "sample", zoo, "--checkpoint", g + ".safetensors", "--out",
            "{ws}/afile", needle="existing file")
    for cmd in ("evaluate digits", "evaluate controlnet", "evaluate zoo", "demo", "humor synth", "videoqa eval"):
        add(f"{cmd} --out existing file", *cmd.split(), "--out", "{ws}/afile", needle="existing file")
        add(f"{cmd} --out under a file", *cmd.split(), "--out", UNDER_FILE, needle="is a file, not a folder")
    add("camera synth --out existing file", "camera", "synth", "--n", "1", "--out", "{ws}/afile", needle="existing file")
    # inputs: missing, a folder, garbage
    for cmd, flag, ext in (("sample digits", "--checkpoint", ".safetensors"),
                           ("sample digits --guidance classifier", "--classifier", ".safetensors"),
                           ("sample digits", "--control", ".safetensors"),
                           ("train controlnet", "--base", ".safetensors"),
                           ("train ldm digits", "--vae", ".safetensors"),
                           ("evaluate digits", "--checkpoint", ".safetensors"),
                           ("evaluate controlnet", "--base", ".safetensors"),
                           ("evaluate director", "--data", ""), ("evaluate funnynet", "--data", ""),
                           ("train director", "--data", ""), ("train clatr", "--data", ""),
                           ("train funnynet", "--data", ""),
                           ("camera tag {ws}/traj.txt", "--char", ".npy"),
                           ("camera generate a", "--checkpoint", ".safetensors"),
                           ("camera generate a", "--char", ".npy"),
                           ("humor detect {ws}/garbage.mp4", "--checkpoint", ".safetensors"),
                           ("videoqa eval --out {ws}/run", "--questions", ".json"),
                           ("videoqa score {ws}/garbage.jsonl", "--questions", ".json")):
        add(f"{cmd} {flag} missing", *cmd.split(), flag, MISSING + ext)
        add(f"{cmd} {flag} folder", *cmd.split(), flag, DIR)
        if ext:
            add(f"{cmd} {flag} garbage", *cmd.split(), flag, g + ext)
    for cmd, ext in (("control extract canny", ".png"), ("camera tag", ".txt"), ("camera caption", ".txt"),
                     ("camera render", ".txt"), ("humor laughter", ".wav"), ("humor label", ".wav"),
                     ("humor detect", ".mp4"), ("videoqa score", ".jsonl"), ("videoqa table", ".jsonl")):
        extra = ["--out", "{ws}/o.png"] if cmd == "camera render" else ["--out", "{ws}/lab.csv"] if cmd == "humor label" else []
        add(f"{cmd} missing", *cmd.split(), MISSING + ext, *extra)
        add(f"{cmd} folder", *cmd.split(), DIR, *extra) if cmd not in ("videoqa table",) else None
        add(f"{cmd} garbage", *cmd.split(), g + ext, *extra)
    # an output equal to an input is refused before anything is written
    add("control extract --out = image", "control", "extract", "canny", "{ws}/img.png", "--out", "{ws}/img.png",
        needle="is the input")
    add("camera render --out = traj", "camera", "render", "{ws}/traj.txt", "--out", "{ws}/traj.txt", needle="is the input")
    add("camera generate --out = char", "camera", "generate", "a", "--char", "{ws}/char.npy", "--out", "{ws}/char.npy",
        needle="is the input")
    add("sample digits --out = checkpoint", "sample", "digits", "--checkpoint", g + ".safetensors", "--out",
        g + ".safetensors", needle="is the input")
    add("humor detect --plot = video", "humor", "detect", g + ".mp4", "--plot", g + ".mp4", needle="is the input")
    # plots with an extension matplotlib cannot write
    add("humor detect --plot p.xyz", "humor", "detect", g + ".mp4", "--plot", "{ws}/p.xyz", needle="unknown extension")
    add("train controlnet --plot p.xyz", "train", "controlnet", "--plot", "{ws}/p.xyz", needle="unknown extension")
    # broken numbers inside files and odd files
    add("camera tag --char empty.npy", "camera", "tag", "{ws}/traj.txt", "--char", "{ws}/empty.npy")
    add("camera generate --char empty.npy", "camera", "generate", "a", "--char", "{ws}/empty.npy", "--out", "{ws}/g.txt")
    add("camera caption --endpoint notaurl", "camera", "caption", "{ws}/traj.txt", "--endpoint", "notaurl")
    add("sample digits --control scale nan", "sample", "digits", "--control", "canny={ws}/img.png:nan", "--out",
        "{ws}/s.png", needle="control scale must be >= 0 and finite")
    add("control extract 400-megapixel png", "control", "extract", "canny", "{ws}/bomb.png", "--out", "{ws}/c.png",
        needle=("decompression bomb", "exceeds limit", "too large"))
    for cmd in ("train digits", "train classifier", "train features"):  # a batch larger than the data set
        add(f"{cmd} --batch-size 5000", *cmd.split(), "--batch-size", "5000", "--steps", "2", "--no-progress",
            "--out", "{ws}/big.safetensors", needle="lower --batch-size")
    # wrong encoding
    add("humor label --subtitles-csv latin1", "humor", "label", g + ".wav", "--out", "{ws}/lab.csv", "--subtitles-csv",
        "{ws}/latin1.csv")
    # resume states: malicious (never unpickled) and of another command
    add("train digits malicious state", "train", "digits", "--out", "{ws}/mal.safetensors", *TINY_DIGITS)
    add("train digits legacy pickle state", "train", "digits", "--out", "{ws}/old.safetensors", *TINY_DIGITS,
        needle="old pickle resume state")
    add("sample digits --checkpoint bad metadata", "sample", "digits", "--checkpoint", "{ws}/badmeta.safetensors",
        "--out", "{ws}/s.png", needle="not valid JSON")
    add("train digits foreign state", "train", "digits", "--out", "{ws}/foreign.safetensors", *TINY_DIGITS,
        needle="train scalar")
    # ids and names with path separators
    add("evaluate zoo --checkpoints ../=garbage", "evaluate", "zoo", "--families", "ae", "--checkpoints",
        "../../ae=" + g + ".safetensors", "--out", "{ws}/ez")
    add("evaluate zoo --families ae/../vae", "evaluate", "zoo", "--families", "ae/../vae", "--out", "{ws}/ez")
    # options whose help names a closed set
    add("evaluate digits --guidance apg", "evaluate", "digits", "--guidance", "apg", "--out", "{ws}/ed")
    return rows


def test_every_command_refuses_bad_paths_and_files_in_one_line(ws):
    _check(path_rows(), ws, "paths and files")
    assert not (ws / "PWNED").exists(), "a resume state was unpickled: a data file ran code"
