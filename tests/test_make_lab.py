"""`make lab` opens the overview notebook, with every notebook in the file browser.

The test runs the Makefile's own `lab` command (read from its recipe, so a change there is
what gets tested) with a stand-in browser that only records what JupyterLab asks it to
open, then asks the server what it serves. The rendering in Chromium is left to the
end-to-end test (tests/e2e).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lab_command() -> list[str]:
    """The arguments that the Makefile's `lab` recipe passes to `jupyter lab`."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE).group(1)
    line = next(ln for ln in recipe.splitlines() if "jupyter lab" in ln)
    args = shlex.split(line.split("jupyter lab", 1)[1].split("#", 1)[0])
    return [a for a in args if a != "$(ALLOW_ROOT)"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_opens_the_overview_with_all_notebooks_in_the_file_browser(tmp_path):
    args = lab_command()
    assert args == ["notebooks/00_overview.ipynb"], args
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    browser.chmod(0o755)
    port, token = free_port(), "cmedu-make-lab-test"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"))  # fmt: skip
    cmd = [
        sys.executable, "-m", "jupyter", "lab", *args, "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
        f"--ServerApp.browser={browser} %s",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # what $(ALLOW_ROOT) adds for root
    with open(tmp_path / "lab.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not opened.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert opened.exists(), (tmp_path / "lab.log").read_text()[-3000:]
        # JupyterLab hands the browser a local page that redirects to the notebook.
        page = Path(opened.read_text().strip().removeprefix("file://")).read_text()
        target = urllib.parse.urlsplit(re.search(r'url=(http[^"]+)"', page).group(1))
        assert (target.port, target.path) == (port, "/lab/tree/00_overview.ipynb"), target
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/contents",
            headers={"Authorization": f"token {token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            served = {item["name"] for item in json.load(r)["content"]}
        notebooks = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert notebooks <= served, sorted(notebooks - served)
    finally:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # the second one skips the confirmation
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
