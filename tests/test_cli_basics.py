"""The front door: help works, bad input is one line and a non-zero exit."""

import subprocess
import sys

from storylab.errors import StorylabError
from storylab.io import atomic_path, atomic_write_json


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "storylab.cli", *args], capture_output=True, text=True)


def test_help_lists_groups():
    out = run_cli("--help")
    assert out.returncode == 0
    for group in ("train", "sample", "evaluate", "guidance"):
        assert group in out.stdout


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.json"
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    except RuntimeError:
        pass
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    atomic_write_json(target, {"a": 1})
    assert target.read_text().strip().startswith("{")


def test_json_is_strict_nan_becomes_null(tmp_path):
    import json

    import numpy as np
    import torch

    target = tmp_path / "m.json"
    atomic_write_json(target, {"nan": float("nan"), "inf": np.float64("inf"), "ok": np.float32(0.5),
                               "arr": np.array([1.0, np.nan]), "t": torch.tensor([np.inf, 2.0]), "n": 3,
                               "path": tmp_path, "nested": [{"x": float("-inf")}]})
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert back == {"nan": None, "inf": None, "ok": 0.5, "arr": [1.0, None], "t": [None, 2.0], "n": 3,
                    "path": str(tmp_path), "nested": [{"x": None}]}


def test_storylab_error_carries_exit_code():
    assert StorylabError("x").exit_code == 2
    assert StorylabError("x", exit_code=3).exit_code == 3


def test_usage_errors_are_one_line_with_exit_2():
    from tests.cli_runner import run_cli

    for args, needle in ((("sample", "flow"), "No such command 'flow'"),
                         (("guidance", "weights", "--steps", "abc"), "Invalid value for '--steps'"),
                         (("guidance", "weights", "--bogus"), "No such option: --bogus")):
        res = run_cli(*args)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]


def test_a_group_without_command_shows_its_help():
    from tests.cli_runner import run_cli

    res = run_cli("guidance")
    assert res.returncode == 0 and "weights" in res.stdout
