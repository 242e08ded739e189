"""Benchmark: `storylab app` start-up and click-to-result per tab in a real browser; optionally `storylab demo` whole.

Budgets (2 CPU cores): page served < 10 s after `storylab app` starts; guidance grid of 10 images at
20 steps < 3 s; camera caption < 2 s once loaded; `storylab demo` < 120 s. Each tab is clicked twice
after the background warm-up has loaded the models ("first" may still include one-off work such as
encoding a figure type for the first time); the table prints seconds and the ratio to the budget.
Run from the repository root: python bench/app_latency.py [--demo] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.app.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS, free_port, start_app, wait_for_page  # noqa: E402
from tests.app.page import AppPage  # noqa: E402


def browser(profile: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for_log(log: Path, pattern: str, timeout: float = 300.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if re.search(pattern, log.read_text(errors="replace")):
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise TimeoutError(f"'{pattern}' not in {log} after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--demo", action="store_true", help="also time `storylab demo` (default settings) end to end")
    parser.add_argument("--no-app", action="store_true", help="skip the app part (with --demo: time the demo only)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of the app and the demo (default 2)")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.no_app:
            app_rows(work, rows)
        if args.demo:
            import resource

            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "storylab.cli", "demo", "--out", str(work / "demo")], check=True,
                           stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
            wall = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            rows.append(("storylab demo (default settings), whole: wall", wall, 120.0))
            rows.append(("  its CPU seconds (= wall on one idle core)", cpu, 240.0))
            sections = __import__("json").loads((work / "demo" / "metrics.json").read_text())["sections"]
            for name, sec in sections.items():
                rows.append((f"  section {name} (wall)", sec["section_seconds"], None))
    print(f"{'measurement':62s} {'seconds':>8s} {'budget':>7s} {'ratio':>6s}")
    for name, seconds, budget in rows:
        ratio = f"{seconds / budget:.2f}" if budget else "-"
        print(f"{name:62s} {seconds:8.2f} {budget if budget else '-':>7} {ratio:>6s}")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")


def app_rows(work: Path, rows: list) -> None:
    """Start the app, wait for its warm-up, click every tab twice in the browser; append (name, seconds, budget)."""
    port = free_port()
    proc = start_app(port, work / "out", work / "server.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        startup = wait_for_page(url, proc)
        rows.append(("app start-up: page served", startup, 10.0))
        loaded = wait_for_log(work / "server.log", r"models loaded") + startup
        print(f"warm-up finished {loaded:.1f} s after start: "
              + re.search(r"models loaded: (.*)", (work / "server.log").read_text()).group(1))
        driver = browser(work / "profile")
        try:
            page = AppPage(driver, url, work)
            page.open()
            for k in (1, 2):
                page.tab("Guidance")
                page.type_into("#guidance-seed input", str(k))  # a new seed: the status line must change
                status, s = page.run("guidance-run", "guidance-status")
                grid = [float(x) for x in re.findall(r"([\d.]+) s\b", status)]
                rows.append((f"guidance click -> 2 grids of 10 (20 DDIM steps, CFG) #{k}", s, 6.0))
                rows.append((f"  server: one grid of 10 images, 20 steps #{k}", grid[0], 3.0))
            for k in (1, 2):
                page.tab("Camera")
                page.type_into("#camera-seed input", str(k))
                status, s = page.run("camera-run", "camera-status")
                rows.append((f"camera caption click -> 3D plot + tags #{k}", s, 2.0))
                rows.append((f"  server: DIRECTOR sampling #{k}", float(re.search(r"sampled in ([\d.]+) s", status).group(1)), 2.0))
            sketch = work / "one.png"
            from PIL import Image, ImageDraw

            img = Image.new("RGB", (200, 200), "white")
            ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill="black", width=18)
            img.save(sketch)
            page.tab("ControlNet")
            page.upload("control-upload", sketch)
            for k in (1, 2):
                page.type_into("#control-seed input", str(k))
                _, s = page.run("control-run", "control-status")
                rows.append((f"ControlNet click -> 8 controlled + 8 base (20 steps) #{k}", s, None))
            page.tab("Humor")
            for k in (1, 2):
                _, s = page.run("humor-run", "humor-status", timeout=300)
                rows.append((f"humor click -> moments of a 24 s episode #{k}" + (" (synthesis)" if k == 1 else ""), s, None))
            page.tab("Video QA")
            for k, n in ((1, 12), (2, 11)):
                page.type_into("#videoqa-limit input", str(n))
                _, s = page.run("videoqa-run", "videoqa-status", timeout=300)
                rows.append((f"video QA click -> {n} questions, retrieval #{k}", s, None))
        finally:
            driver.quit()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
