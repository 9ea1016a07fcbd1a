"""Fixtures of the end-to-end test: Debian's Chromium driven by Playwright, a JupyterLab
server from the project's own environment, and a folder for screenshots.

The browser is never downloaded (``playwright install`` cannot reach its CDN here): the
test uses the system Chromium, ``/usr/bin/chromium`` or ``$CMEDU_CHROMIUM``. When it is
missing the test FAILS, naming the browser and how to install it; it is never skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from e2e_support import CHROMIUM, CHROMIUM_ARGS, NOTEBOOKS, LabServer, widget_notebooks


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots, the browser console and JupyterLab's log: ``$CMEDU_E2E_ARTIFACTS`` or
    ``tests/e2e/screenshots/`` (emptied at the start of each run, ignored by git)."""
    where = os.environ.get("CMEDU_E2E_ARTIFACTS")
    path = Path(where).resolve() if where else Path(__file__).resolve().parent / "screenshots"
    if not where:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / ".gitignore").write_text("*\n")
    return path


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium is missing: no executable browser at {CHROMIUM}. The end-to-end test "
            "drives Debian's Chromium through Playwright (Playwright's own browser download "
            "is not used). Install it with `sudo apt-get install -y chromium` (Debian; on "
            "Ubuntu the `chromium` snap or another Chromium build) or point CMEDU_CHROMIUM "
            "at a Chromium executable; `.ci/run` installs it before `make test`.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "The Python package `playwright` is missing: it is in the test extra, "
            "`pip install -e '.[test]'` (make test does this).",
            pytrace=False,
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory, artifacts):
    """JupyterLab on a copy of the widget notebooks with their stored outputs removed (the
    copy keeps JupyterLab's autosave away from the course's files), in fast mode with the
    explorers live. Stopped by its own process id."""
    work = tmp_path_factory.mktemp("e2e-lab")
    root = work / "notebooks"
    root.mkdir()
    for path in widget_notebooks():
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, root / path.name)
    shutil.copy(NOTEBOOKS / "README.md", root / "README.md")
    env = {"CMEDU_FAST": "1", "CMEDU_LIVE": "1"}
    server = LabServer(root, work, env=env, log=artifacts / "jupyterlab.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
