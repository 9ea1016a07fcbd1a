"""Helpers of the end-to-end test: which notebooks have explorers, the browser's settings,
and a JupyterLab server for the test: the project's own Python, a free loopback
port, a random token, a private settings / workspace / runtime folder, and a stop by the
server's own process id (then by the ids of the kernels it started, should any survive)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = os.environ.get("CMEDU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}  # a laptop screen
START_TIMEOUT = 90  # seconds for the server to answer /api/status


def widget_notebooks() -> list[Path]:
    """The course notebooks that build an explorer (``widgets.<name>_explorer(...)``)."""
    found = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if "widgets." in code and "_explorer(" in code:
            found.append(path)
    return found


def free_port() -> int:
    """A port that nothing listens on at 127.0.0.1 (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; empty elsewhere)."""
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


class LabServer:
    """``with LabServer(root, workdir, env) as lab: lab.url("lab/tree/x.ipynb")``."""

    def __init__(self, root: Path, workdir: Path, env: dict[str, str] | None = None, log=None):
        self.root, self.workdir = Path(root), Path(workdir)
        self.extra_env = dict(env or {})
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.log_path = Path(log) if log else self.workdir / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None

    # --- addresses ------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str, reset: bool = False) -> str:
        """The address of ``path`` with the token; ``reset``: start from an empty workspace
        (JupyterLab would otherwise reopen, and restart the kernels of, earlier tabs)."""
        return f"{self.base}/{path.lstrip('/')}?{'reset&' if reset else ''}token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(
            f"{self.base}/api/{path}", method=method,
            headers={"Authorization": f"token {self.token}"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    # --- start and stop -------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        settings = self.workdir / "lab-settings"
        notes = settings / "@jupyterlab" / "apputils-extension"
        notes.mkdir(parents=True, exist_ok=True)
        # No "fetch Jupyter news?" toast and no update check: the browser is offline.
        (notes / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env = dict(os.environ)
        env.update(
            JUPYTERLAB_SETTINGS_DIR=str(settings),
            JUPYTERLAB_WORKSPACES_DIR=str(self.workdir / "lab-workspaces"),
            JUPYTER_RUNTIME_DIR=str(self.workdir / "runtime"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self) -> LabServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser",
            "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            cmd, cwd=self.root, env=self._environment(), stdout=log, stderr=subprocess.STDOUT
        )
        self._log = log
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with status {self.proc.returncode} before it answered; "
                    f"log: {self.log_path}\n{self.log_tail()}"
                )
            try:
                self.api("status")
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"JupyterLab did not answer on {self.base} within {START_TIMEOUT} s; "
            f"log: {self.log_path}\n{self.log_tail()}"
        )

    def kernel_pids(self) -> list[int]:
        """Process ids of the kernels the server runs now (its child processes)."""
        return [k for k in _children(self.proc.pid) if _alive(k)] if self.proc else []

    def shutdown_kernels(self) -> None:
        """Shut down every kernel through the REST API (frees the CPU between notebooks)."""
        try:
            for k in self.api("kernels"):
                self.api(f"kernels/{k['id']}", method="DELETE")
        except (urllib.error.URLError, OSError):
            pass

    def stop(self) -> None:
        """SIGTERM to the server's own pid (it shuts its kernels down), SIGKILL after 15 s;
        kernels that outlive it are then stopped by their own pids."""
        if self.proc is None:
            return
        pid = self.proc.pid
        kernels = _children(pid)
        if self.proc.poll() is None:
            self.shutdown_kernels()
            os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for k in kernels:
            if _alive(k):
                try:
                    os.kill(k, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self._log.close()
        self.proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
