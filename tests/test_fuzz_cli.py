"""The fuzz table: every command x every class of bad input, through the real entry point.

Each row is a command line that must fail cleanly: a non-zero exit code, exactly one line on stderr
that starts with ``error:`` and names the problem, no traceback, no "internal error" (an exception
the boundary did not recognise), no file or folder left behind in the work folder, and an answer
within :data:`ROW_SECONDS`. Numeric rows are generated from the command tree (nan, below and above
each option's range), so a new option or command is covered as soon as it has a row in
``storylab/cli_types.py``; path rows are the table :func:`path_rows` below: add a row for a new
command (:func:`test_every_command_has_rows_in_the_path_table` fails until it has one). Special
files (a FIFO, a device, a socket given as an input or an output, a file output typed with a
trailing ``/``) are generated from the command tree too, for every path parameter of every
command. Broken content (checkpoints, chat replies, trajectories, data sets, SPECs) is the table
:func:`content_rows`. The counts are printed at the end of each test (run with ``-s`` to see them).
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import signal
import socket
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    _special_files(root)
    _broken_checkpoints(root)
    _broken_content(root)
    return root


SPECIALS = ("fifo", "sock", "null", "zero")  # a FIFO, a socket, /dev/null's and /dev/zero's device numbers


def _make_special(path: Path) -> None:
    """Create the special file ``path`` names (as a non-root user, a device is a symbolic link to the real
    one, which an atomic rename would replace just the same)."""
    if path.name == "fifo" or path.suffix == ".wav":
        os.mkfifo(path)
    elif path.name == "sock":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.close()  # the socket file stays
    else:
        minor = {"null": 3, "zero": 5}[path.name]
        try:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
        except PermissionError:
            path.symlink_to(f"/dev/{path.name}")


def _special_files(root: Path) -> None:
    for name in SPECIALS:
        _make_special(root / name)
    (root / "fifodir").mkdir()  # a folder of media holding a FIFO named like a WAV
    _make_special(root / "fifodir" / "x.wav")


def _replaced_specials(root: Path) -> list[str]:
    """The special files that a row replaced (by a regular file, say); each is made again for the next row."""
    replaced = []
    for path in [root / name for name in SPECIALS] + [root / "fifodir" / "x.wav"]:
        mode = os.stat(path).st_mode if path.exists() else 0
        if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
            replaced.append(str(path.relative_to(root)))
            if path.exists() or path.is_symlink():
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            _make_special(path)
    return replaced


ASSETS = Path(__file__).resolve().parents[1] / "storylab" / "assets"
CHECKPOINTS = {  # a shipped checkpoint of each kind a command loads
    "denoiser": "images/digits_denoiser.safetensors", "classifier": "images/digits_classifier.safetensors",
    "controlnet": "images/controlnet_canny.safetensors", "features": "images/digit_features.safetensors",
    **{f"zoo_{f}": f"images/zoo_{f}.safetensors" for f in ("ae", "vae", "cvae", "vqvae", "gan", "ldm")},
    "director": "camera/director_crossattn_tiny.safetensors", "clatr": "camera/clatr_tiny.safetensors",
    "funnynet": "humor/funnynet_avt.safetensors",
}


def _broken_checkpoints(root: Path) -> None:
    """For each kind: ``nan_<kind>`` (right keys, shapes and metadata, one tensor all NaN) and ``v999_<kind>``
    (intact weights, ``storylab.format`` 999)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    for kind, rel in CHECKPOINTS.items():
        with safe_open(str(ASSETS / rel), framework="pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(str(ASSETS / rel))
        first = next(k for k, v in state.items() if v.is_floating_point())
        save_file({**state, first: torch.full_like(state[first], float("nan"))}, str(root / f"nan_{kind}.safetensors"),
                  metadata=meta)
        save_file(state, str(root / f"v999_{kind}.safetensors"), metadata={**meta, "storylab.format": "999"})


def _broken_content(root: Path) -> None:
    """A trajectory and a character path out of range, E.T. folders with a repeated split id or no char/,
    an audio-only file and a 10 ms one."""
    from storylab.camera.synth import SynthConfig, write_synth_dataset
    from storylab.humor.media import write_wav

    poses = [f"1 0 0 {0.05 * i:.3f} 0 1 0 0 0 0 1 0" for i in range(40)]
    poses[5] = "1 0 0 1e308 0 1 0 0 0 0 1 0"
    (root / "far.txt").write_text("\n".join(poses) + "\n")
    np.save(root / "farchar.npy", np.stack([np.linspace(0, 1, 40), np.zeros(40), np.full(40, 1e308)], 1))
    write_synth_dataset(str(root / "et"), 8, 0, 0.5, SynthConfig(min_seconds=2.0, max_seconds=2.0))
    shutil.copytree(root / "et", root / "et_dup")
    for part in ("train", "test"):
        split = root / "et_dup" / f"mixed_{part}_split.txt"
        first = split.read_text().split()[0]
        split.write_text(split.read_text().rstrip("\n") + "\n" + first)
    shutil.copytree(root / "et", root / "et_nochar")
    shutil.rmtree(root / "et_nochar" / "char")
    rng = np.random.default_rng(1)
    write_wav(root / "audio_only.wav", 0.1 * rng.standard_normal((2, 32000)))
    write_wav(root / "ten_ms.wav", 0.1 * rng.standard_normal((2, 160)))


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
    counts = {"clean": 0, "traceback": 0, "hang": 0, "exit0": 0, "lines": 0, "leftover": 0, "wrong message": 0,
              "replaced special file": 0}
    failures, seconds = [], []
    for name, argv, needle in rows:
        before = _snapshot(root)
        t0 = time.perf_counter()
        outcome, result = _run_row([a.format(ws=root) for a in argv])
        seconds.append((time.perf_counter() - t0, name))
        left = sorted(str(p.relative_to(root)) for p in _snapshot(root) - before)
        for p in sorted(_snapshot(root) - before, key=lambda p: -len(p.parts)):  # clean up for the next row
            p.rmdir() if p.is_dir() else p.unlink()
        replaced = _replaced_specials(root)
        if replaced:
            counts["replaced special file"] += 1
            left = left + [f"{name} replaced" for name in replaced]
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
    # the other data sets' commands, the reference, the pipeline study, the app, the model export
    for data in ("fashion-mnist", "mnist"):
        add(f"train {data} --out under a file", "train", data, "--out", UNDER_FILE + ".safetensors",
            needle="is a file, not a folder")
        add(f"sample {data} --checkpoint missing", "sample", data, "--checkpoint", MISSING + ".safetensors",
            "--out", "{ws}/s.png", needle="missing/nothing")
        add(f"sample {data} --checkpoint garbage", "sample", data, "--checkpoint", g + ".safetensors", "--out", "{ws}/s.png")
        add(f"sample {data} --out existing folder", "sample", data, "--out", DIR, needle="existing folder")
        add(f"evaluate {data} --out existing file", "evaluate", data, "--out", "{ws}/afile", needle="existing file")
        add(f"evaluate {data} --checkpoint missing", "evaluate", data, "--checkpoint", MISSING + ".safetensors",
            "--out", "{ws}/ed", needle="missing/nothing")
    add("evaluate reference --out under a file", "evaluate", "reference", "--out", UNDER_FILE + ".safetensors",
        needle="is a file, not a folder")
    add("evaluate reference --out existing folder", "evaluate", "reference", "--out", DIR, needle="existing folder")
    add("evaluate pipeline --model missing", "evaluate", "pipeline", "--model", MISSING, "--prompts", "{ws}/afile",
        "--out", "{ws}/ep", needle="missing/nothing")
    add("evaluate pipeline --model not a pipeline", "evaluate", "pipeline", "--model", DIR, "--prompts", "{ws}/afile",
        "--out", "{ws}/ep")
    add("evaluate pipeline --prompts folder", "evaluate", "pipeline", "--model", DIR, "--prompts", DIR, "--out", "{ws}/ep")
    add("evaluate pipeline --out existing file", "evaluate", "pipeline", "--model", DIR, "--prompts", "{ws}/afile",
        "--out", "{ws}/afile", needle=("existing file", "is the input"))
    add("app --out existing file", "app", "--out", "{ws}/afile", needle="existing file")
    add("app --out under a file", "app", "--out", UNDER_FILE, needle="is a file, not a folder")
    add("videoqa export-model --out existing folder", "videoqa", "export-model", "--out", DIR)
    add("videoqa export-model --out under a file", "videoqa", "export-model", "--out", UNDER_FILE,
        needle="is a file, not a folder")
    add("guidance weights --schedule clamp without floor", "guidance", "weights", "--schedule", "clamp:linear",
        needle="expected clamp:<shape>:c=<floor>")
    # the lectures' guidance experiments, CLaTr's retrieval, the humor detector's moment scores
    for cmd in ("evaluate guidance-removal", "evaluate code-slide-loops"):
        add(f"{cmd} --checkpoint missing", *cmd.split(), "--checkpoint", MISSING + ".safetensors", "--out", "{ws}/lg",
            needle="missing/nothing")
        add(f"{cmd} --checkpoint garbage", *cmd.split(), "--checkpoint", g + ".safetensors", "--out", "{ws}/lg")
        add(f"{cmd} --out existing file", *cmd.split(), "--out", "{ws}/afile", needle="existing file")
    add("evaluate clatr --data missing", "evaluate", "clatr", "--data", MISSING, needle="missing/nothing")
    add("evaluate clatr --checkpoint garbage", "evaluate", "clatr", "--checkpoint", g + ".safetensors")
    add("humor evaluate missing folder", "humor", "evaluate", MISSING, needle="missing/nothing")
    add("humor evaluate a file", "humor", "evaluate", "{ws}/afile")
    return rows


def test_every_command_refuses_bad_paths_and_files_in_one_line(ws):
    _check(path_rows(), ws, "paths and files")
    assert not (ws / "PWNED").exists(), "a resume state was unpickled: a data file ran code"


# ---------------------------------------------------------------------------------------------------
# rows generated from the command tree: special files for every path parameter of every command

REQUIRED_VALUES = {"dataset": "digits", "kind": "canny", "caption": "a", "n": "1"}  # required non-path values


def _commands() -> list[tuple[str, object]]:
    """Every (command path, click command) of ``storylab``."""
    from storylab.cli import command

    def walk(node, path: str = ""):
        if hasattr(node, "commands"):
            for name, sub in node.commands.items():
                yield from walk(sub, f"{path} {name}".strip())
        else:
            yield path, node

    return list(walk(command()))


def _is_path(param) -> bool:
    return "Path" in str(getattr(getattr(param, "type_descriptor", None), "annotation", ""))


def _flag(param) -> str | None:
    longs = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return longs[0] if longs and param.param_type_name == "option" else None


def _argv(path: str, cmd, given: dict[str, str]) -> list[str]:
    """A command line of ``path`` with ``given`` values and every other required parameter filled in."""
    from storylab.cli_types import OUTPUT_PARAMS

    argv = path.split()
    for param in cmd.params:
        if param.name in given:
            value = given[param.name]
        elif param.required:
            value = REQUIRED_VALUES.get(param.name) or (
                "{ws}/newout" if param.name in OUTPUT_PARAMS else "{ws}/adir" if _is_path(param) else None)
            assert value is not None, f"add a value for the required parameter {param.name} of '{path}' to REQUIRED_VALUES"
        else:
            continue
        flag = _flag(param)
        argv += [flag, value] if flag else [value]
    return argv


def special_rows() -> list[tuple[str, list[str], str | None]]:
    """Every path parameter of every command x the special files it must refuse before opening or renaming:
    inputs a FIFO (opening blocks) or /dev/zero (never ends); outputs a character device, a FIFO or a
    socket (an atomic rename would replace it); file outputs typed with a trailing '/'."""
    from storylab.cli_types import OUTPUT_PARAMS, output_is_file

    rows = []
    for path, cmd in _commands():
        for param in cmd.params:
            if not _is_path(param):
                continue
            label = _flag(param) or param.name.upper()
            if param.name in OUTPUT_PARAMS:
                for special, needle in (("null", "a character device"), ("fifo", "a FIFO"), ("sock", "a socket")):
                    rows.append((f"{path} {label} {special}", _argv(path, cmd, {param.name: "{ws}/" + special}), needle))
                if output_is_file(path, param.name, param.default):
                    rows.append((f"{path} {label} trailing slash", _argv(path, cmd, {param.name: "{ws}/new.out/"}),
                                 "a path ending in '/' names a folder"))
            else:
                for special, needle in (("fifo", "a FIFO"), ("zero", "a character device")):
                    rows.append((f"{path} {label} {special}", _argv(path, cmd, {param.name: "{ws}/" + special}), needle))
    return rows


def test_every_command_refuses_special_files_before_opening_them(ws):
    _check(special_rows(), ws, "special files")


def test_every_command_has_rows_in_the_path_table():
    """The hand-written path table names every command of the tree: a new command fails here until it has rows."""
    table = {" ".join(argv[:n]) for _, argv, _ in path_rows() for n in (1, 2, 3)}
    missing = [path for path, _ in _commands() if path not in table]
    assert not missing, "add rows to path_rows() in tests/test_fuzz_cli.py for: " + ", ".join(missing)


def test_every_path_parameter_has_special_file_rows():
    """special_rows() covers every path parameter of every command (it is generated, so this guards the generator)."""
    rows = {name for name, _, _ in special_rows()}
    for path, cmd in _commands():
        for param in cmd.params:
            if _is_path(param):
                label = _flag(param) or param.name.upper()
                assert any(r.startswith(f"{path} {label} ") for r in rows), f"{path} {label} has no special-file row"


# ---------------------------------------------------------------------------------------------------
# broken content: checkpoints, chat replies, trajectories, data sets, SPECs, media

class BadChatServer:
    """A loopback server answering ``POST .../chat/completions`` by the requested model name:
    ``null``, ``number``, ``listnull`` (content that is not text), ``nanvalue`` / ``nanbody``
    (Python's NaN token, not JSON), ``redirect`` (HTTP 302) or ``trickle`` (one byte a second)."""

    BODIES = {
        "null": b'{"choices":[{"message":{"role":"assistant","content":null}}]}',
        "number": b'{"choices":[{"message":{"role":"assistant","content":3}}]}',
        "listnull": b'{"choices":[{"message":{"role":"assistant","content":[{"type":"text","text":"A"},null]}}]}',
        "nanvalue": b'{"choices":[{"message":{"role":"assistant","content":NaN}}]}',
        "nanbody": b'{"choices":[{"message":{"role":"assistant","content":"A"}}],"usage":{"total_tokens":NaN}}',
    }

    def __init__(self) -> None:
        bodies = self.BODIES

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                model = json.loads(raw).get("model", "")
                try:
                    if model == "redirect":
                        self.send_response(302)
                        self.send_header("Location", "http://127.0.0.1:1/v1/chat/completions")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    elif model == "trickle":
                        body = b'{"choices":[{"message":{"content":"' + b"A" * 100 + b'"}}]}'
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        for byte in body:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1.0)
                    else:
                        body = bodies[model]
                        self.send_response(200)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "BadChatServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def content_rows(port: int) -> list[tuple[str, list[str], str | None]]:
    """Broken content across every command it reaches (inputs that are files of the right type)."""
    rows: list[tuple[str, list[str], str | None]] = []

    def add(name: str, *argv: str, needle: str | tuple[str, ...] | None = None) -> None:
        rows.append((name, list(argv), needle))

    nan, v999 = "non-finite value", "unknown storylab.format version '999'"
    ck = "{ws}/%s_%s.safetensors"
    # checkpoints: NaN weights and an unknown format version, in every loader a command reaches
    for cmd, flag, kind in (("sample digits", "--checkpoint", "denoiser"), ("sample fashion-mnist", "--checkpoint", "denoiser"),
                            ("sample mnist", "--checkpoint", "denoiser"),
                            ("sample digits --guidance classifier", "--classifier", "classifier"),
                            ("evaluate digits", "--checkpoint", "denoiser"), ("evaluate controlnet", "--base", "denoiser"),
                            ("train controlnet --steps 1", "--base", "denoiser"), ("train ldm digits --steps 1", "--vae", "zoo_vae"),
                            ("camera generate a --out {ws}/g.txt", "--checkpoint", "director"),
                            ("evaluate director --data {ws}/et", "--checkpoint", "director"),
                            ("evaluate director --data {ws}/et", "--clatr", "clatr"),
                            ("humor detect {ws}/garbage.mp4", "--checkpoint", "funnynet"),
                            *((f"sample {f}", "--checkpoint", f"zoo_{f}") for f in ("ae", "vae", "cvae", "vqvae", "gan", "ldm"))):
        out = ["--out", "{ws}/s.png"] if cmd.startswith("sample digits") or cmd.startswith("sample fashion") or \
            cmd.startswith("sample mnist") else []
        add(f"{cmd} {flag} NaN weights", *cmd.split(), flag, ck % ("nan", kind), *out, needle=nan)
        add(f"{cmd} {flag} format 999", *cmd.split(), flag, ck % ("v999", kind), *out, needle=v999)
    add("evaluate zoo --checkpoints ae=NaN weights", "evaluate", "zoo", "--families", "ae", "--checkpoints",
        "ae=" + ck % ("nan", "zoo_ae"), "--out", "{ws}/ez", needle=nan)
    # chat replies that are not an answer, a redirect, a server trickling bytes
    server = f"openai://127.0.0.1:{port}/"
    malformed = "malformed reply"
    for kind, needle in (("null", malformed), ("number", malformed), ("listnull", malformed), ("nanvalue", malformed),
                         ("nanbody", malformed), ("redirect", "redirects to http://127.0.0.1:1/")):
        add(f"videoqa eval --backend {kind}", "videoqa", "eval", "--sample", "--backend", server + kind, "--retries", "0",
            "--no-progress", "--out", "{ws}/run", needle=needle)
    for kind, needle in (("null", malformed), ("redirect", "redirects to")):
        add(f"camera caption --endpoint {kind}", "camera", "caption", "{ws}/traj.txt", "--endpoint", server + kind,
            needle=needle)
    add("videoqa eval --backend trickle --timeout 1", "videoqa", "eval", "--sample", "--backend", server + "trickle",
        "--retries", "0", "--timeout", "1", "--no-progress", "--out", "{ws}/run", needle="no reply within 1 s")
    add("camera caption --endpoint trickle --timeout 1", "camera", "caption", "{ws}/traj.txt", "--endpoint",
        server + "trickle", "--timeout", "1", needle="no reply within 1 s")
    # positions out of range
    far = "beyond the 1e+06"
    add("camera tag far trajectory", "camera", "tag", "{ws}/far.txt", needle=far)
    add("camera caption far trajectory", "camera", "caption", "{ws}/far.txt", needle=far)
    add("camera render far trajectory", "camera", "render", "{ws}/far.txt", "--out", "{ws}/r.png", needle=far)
    add("camera tag --char far", "camera", "tag", "{ws}/traj.txt", "--char", "{ws}/farchar.npy", needle=far)
    add("camera render --char far", "camera", "render", "{ws}/traj.txt", "--char", "{ws}/farchar.npy", "--out",
        "{ws}/r.png", needle=far)
    add("camera generate --char far", "camera", "generate", "a", "--char", "{ws}/farchar.npy", "--out", "{ws}/g.txt",
        needle=far)
    # data sets: a split naming a sample twice, an E.T. folder without char/
    for cmd in ("train director --steps 1", "train clatr --steps 1", "evaluate director"):
        add(f"{cmd} repeated split id", *cmd.split(), "--data", "{ws}/et_dup", needle="is listed twice")
        add(f"{cmd} no char/", *cmd.split(), "--data", "{ws}/et_nochar", needle="has no char/")
    # a SPEC with a repeated key, in every option that takes one
    needs = {"sample mnist": ["--checkpoint", str(ASSETS / CHECKPOINTS["denoiser"])],  # none shipped
             "evaluate director": ["--data", "{ws}/et"]}
    for path, cmd in _commands():
        for param in cmd.params:
            if _flag(param) in ("--schedule", "--schedules"):
                value = "pcs:s=1,s=2" if _flag(param) == "--schedule" else "constant;pcs:s=1,s=2"
                rows.append((f"{path} {_flag(param)} repeated key",
                             _argv(path, cmd, {param.name: value}) + needs.get(path, []), "given twice"))
    # media: audio where a video is needed, shorter than one window, a FIFO inside a folder of media
    add("humor detect audio only", "humor", "detect", "{ws}/audio_only.wav", needle="has no video stream")
    add("humor detect 10 ms", "humor", "detect", "{ws}/ten_ms.wav", needle="shorter than one --stride")
    add("humor laughter folder with a FIFO", "humor", "laughter", "{ws}/fifodir", needle="a FIFO")
    add("humor label folder with a FIFO", "humor", "label", "{ws}/fifodir", "--out", "{ws}/fifodir/lab.csv", needle="a FIFO")
    return rows


def test_broken_content_is_refused_in_one_line(ws):
    with BadChatServer() as server:
        _check(content_rows(server.port), ws, "broken content")


def test_a_bad_reply_cap_is_refused_before_the_run_folder_exists(ws, monkeypatch):
    monkeypatch.setenv("STORYLAB_MAX_REPLY_BYTES", "abc")
    _check([("videoqa eval with STORYLAB_MAX_REPLY_BYTES=abc", ["videoqa", "eval", "--sample", "--backend", "random",
                                                                "--no-progress", "--out", "{ws}/run"],
             "STORYLAB_MAX_REPLY_BYTES='abc' is not a positive number")], ws, "environment")
