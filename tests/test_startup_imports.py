"""Start-up cost guarded by what a command imports (issue #20), not by timing.

Each case runs the real ``storylab`` entry point in a fresh interpreter and reports which heavy
libraries ended up in ``sys.modules``: a command that imports torch (about 2 s) or transformers
(about 4 s more: torch._dynamo, scipy, scikit-learn) where it needs neither fails here whatever the
machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import storylab

ROOT = Path(storylab.__file__).resolve().parent.parent
HEAVY = ("torch", "transformers", "torch._dynamo", "sentence_transformers", "matplotlib", "scipy", "sklearn",
         "accelerate", "diffusers", "cv2", "sympy")
PROBE = """
import json, runpy, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["storylab", *json.loads(sys.argv[1])]
code = 0
try:
    runpy.run_module("storylab.cli", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code or 0
print("\\nPROBE " + json.dumps({"code": code, "loaded": [m for m in heavy if m in sys.modules]}))
"""


def loaded_by(*args: str, cwd: Path) -> set[str]:
    """Heavy modules loaded by ``storylab ARGS`` in a fresh interpreter (the command must succeed)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)
    line = next((x for x in done.stdout.splitlines() if x.startswith("PROBE ")), None)
    assert line is not None, done.stderr
    report = json.loads(line[len("PROBE "):])
    assert report["code"] == 0, done.stderr
    return set(report["loaded"])


@pytest.mark.parametrize("args", [
    ("--help",),
    ("guidance", "weights", "--schedule", "cosine", "--json"),
    ("guidance", "weights", "--schedule", "clamp:pcs:s=0.5:c=1@paper", "--steps", "7"),  # the rich table
])
def test_help_and_guidance_weights_never_import_torch(args, tmp_path):
    assert loaded_by(*args, cwd=tmp_path) == set()


def test_control_extract_imports_opencv_but_not_torch(tmp_path):
    image = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 40)) * 255).astype(np.uint8)).save(image)
    loaded = loaded_by("control", "extract", "canny", str(image), "--out", str(tmp_path / "edges.png"), cwd=tmp_path)
    assert "cv2" in loaded and "torch" not in loaded
    assert (tmp_path / "edges.png").is_file()


def test_camera_generate_runs_on_torch_alone(tmp_path):
    """The shipped DIRECTOR and the bundled MiniLM need torch, neither transformers nor a plotting library
    (nor sympy, which torch's MultiheadAttention imports on its first key-padding check)."""
    loaded = loaded_by("camera", "generate", "the camera pushes in", "--frames", "40", "--steps", "2",
                       "--out", str(tmp_path / "traj.txt"), cwd=tmp_path)
    assert "torch" in loaded
    assert loaded.isdisjoint({"transformers", "torch._dynamo", "sentence_transformers", "matplotlib", "sklearn", "sympy"}), loaded
    assert len((tmp_path / "traj.txt").read_text().splitlines()) == 40
