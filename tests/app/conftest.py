"""Fixtures of the web app's browser tests: ``storylab app`` on a free loopback port, headless Chromium.

The browser is Debian's ``chromium`` driven through ``chromium-driver`` (``.ci/run`` installs both);
no browser is downloaded. Screenshots go to ``STORYLAB_SCREENSHOTS`` if set, else a pytest tmp folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import storylab

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1700")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(port: int, out: Path, log: Path) -> subprocess.Popen:
    """``storylab app --port PORT --out OUT`` in a subprocess (this checkout's storylab, one torch thread)."""
    root = str(Path(storylab.__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "storylab.cli", "app", "--port", str(port), "--out", str(out)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def wait_for_page(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> float:
    """Seconds until ``url`` answers HTTP 200; fails if the server exits first or never answers."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"storylab app exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """The running app's address; the app is stopped (and must stop) at the end of the session."""
    work = tmp_path_factory.mktemp("app")
    port = free_port()
    proc = start_app(port, work / "out", work / "server.log")
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_page(url, proc)
        yield url
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"{exc}; server log:\n{(work / 'server.log').read_text()[-3000:]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, through selenium and the system chromedriver."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # to list every request the page makes
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the tests save what the page showed."""
    target = os.environ.get("STORYLAB_SCREENSHOTS")
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
