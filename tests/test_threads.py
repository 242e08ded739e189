"""The global ``--threads`` / ``STORYLAB_THREADS`` setting: it reaches torch, its default, its errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import storylab
from storylab.threads import physical_cores, use_threads
from tests.cli_runner import run_cli

ROOT = Path(storylab.__file__).resolve().parent.parent
CHEAP = ("guidance", "weights", "--schedule", "cosine", "--json")  # a command that imports no torch itself
PROBE = """
import json, runpy, sys
sys.argv = ["storylab", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("storylab.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
import torch  # as every command does, after the CLI has parsed its options
print("\\nPROBE " + json.dumps({"code": code, "threads": torch.get_num_threads()}))
"""


def threads_in_fresh_process(args: tuple[str, ...], **env: str) -> int:
    """torch's intra-op thread count in a new interpreter that ran ``storylab ARGS`` (the command must succeed)."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "STORYLAB_THREADS")}
    base["PYTHONPATH"] = f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args))], capture_output=True, text=True,
                          env={**base, **env}, timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, done.stderr
    report = json.loads(line[len("PROBE "):])
    assert report["code"] == 0, done.stderr
    return report["threads"]


def test_threads_option_and_variable_reach_torch_in_the_commands_process():
    # 3 is neither the OMP_NUM_THREADS given nor this machine's default, and more than a 2-CPU machine's
    # OpenMP runtime grants through OMP_NUM_THREADS=3 alone: only torch.set_num_threads after the import gives it
    assert threads_in_fresh_process(("--threads", "3", *CHEAP), OMP_NUM_THREADS="1") == 3
    assert threads_in_fresh_process(CHEAP, STORYLAB_THREADS="3", OMP_NUM_THREADS="1") == 3
    assert threads_in_fresh_process(("--threads", "3", *CHEAP), STORYLAB_THREADS="1") == 3  # the option wins


def test_default_is_omp_num_threads_else_the_physical_cores():
    assert threads_in_fresh_process(CHEAP, OMP_NUM_THREADS="1") == 1
    assert threads_in_fresh_process(CHEAP) == physical_cores()


def test_threads_option_resets_an_already_loaded_torch(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # monkeypatch restores them after the test
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv("STORYLAB_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        assert run_cli("--threads", "3", *CHEAP).returncode == 0
        assert torch.get_num_threads() == 3
        assert os.environ["OMP_NUM_THREADS"] == os.environ["MKL_NUM_THREADS"] == "3"  # child processes inherit it
        torch.set_num_threads(1)
        assert run_cli(*CHEAP).returncode == 0  # no setting: a loaded torch keeps what its program chose
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _worker_threads(index: int) -> int:
    return torch.get_num_threads()


def test_data_loader_workers_use_one_thread(monkeypatch):
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    before = torch.get_num_threads()
    try:
        use_threads(3)
        loader = torch.utils.data.DataLoader(range(2), batch_size=None, num_workers=1, collate_fn=_worker_threads,
                                             multiprocessing_context="fork")
        assert list(loader) == [1, 1]
        assert torch.get_num_threads() == 3  # the parent keeps its setting
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", ["0", "-1", "1025", "two", "1.5"])
@pytest.mark.parametrize("where", ["option", "variable"])
def test_a_bad_thread_count_is_one_error_line(value, where, monkeypatch):
    monkeypatch.delenv("STORYLAB_THREADS", raising=False)
    if where == "variable":
        monkeypatch.setenv("STORYLAB_THREADS", value)
        result = run_cli(*CHEAP)
    else:
        result = run_cli(f"--threads={value}", *CHEAP)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Invalid value for '--threads'"), result.stderr


def test_a_bad_omp_num_threads_is_one_error_line(monkeypatch):
    monkeypatch.delenv("STORYLAB_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    result = run_cli(*CHEAP)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "error: OMP_NUM_THREADS must be a whole number of threads (1-1024), got 'many'\n"


def test_help_names_the_option_its_variable_and_default():
    from storylab.cli import command

    option = next(p for p in command().params if p.name == "threads")
    assert option.opts == ["--threads"] and option.envvar == "STORYLAB_THREADS"
    assert f"physical cores ({physical_cores()} here)" in option.help and "data-loader workers use 1" in option.help
    assert "STORYLAB_THREADS" in run_cli("--help").stdout


def _write_topology(root: Path, cpu: int, package: int, core: int) -> None:
    topology = root / f"cpu{cpu}" / "topology"
    topology.mkdir(parents=True)
    (topology / "physical_package_id").write_text(f"{package}\n")
    (topology / "core_id").write_text(f"{core}\n")


def test_physical_cores_count_hyperthreads_once(tmp_path):
    _write_topology(tmp_path, 0, package=0, core=0)
    _write_topology(tmp_path, 1, package=0, core=0)  # cpu1 is cpu0's hyper-thread
    _write_topology(tmp_path, 2, package=0, core=1)
    _write_topology(tmp_path, 3, package=1, core=0)  # core id 0 again, on the second socket
    assert physical_cores([0, 1, 2, 3], tmp_path) == 3
    assert physical_cores([0, 1], tmp_path) == 1
    assert physical_cores([0, 1, 9], tmp_path) == 2  # no topology for cpu9: a core of its own


@pytest.mark.skipif(shutil.which("lscpu") is None, reason="needs util-linux's lscpu")
def test_physical_cores_agree_with_lscpu():
    allowed = os.sched_getaffinity(0)
    rows = subprocess.run(["lscpu", "-p=CPU,CORE,SOCKET"], capture_output=True, text=True, check=True).stdout
    cores = {tuple(line.split(",")[1:]) for line in rows.splitlines()
             if line and not line.startswith("#") and int(line.split(",")[0]) in allowed}
    assert physical_cores() == len(cores)
