"""Start the real app as a subprocess on a free local port, for end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def sign_in(page, name: str = "local", timeout: float = 300_000) -> None:  # noqa: ANN001
    """Type the session's name into the box the app asks first, and wait for the Data page."""
    page.get_by_role("textbox", name="Your name").fill(name, timeout=timeout)
    page.get_by_role("button", name="Start labeling").click()
    page.get_by_role("heading", name="Data").wait_for(timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def app_server(
    data_dir: Path, timeout: float = 120, log: Path | None = None, env: dict | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield the base URL and the process of `streamlit run app.py` serving `data_dir` (with env
    added to its environment); then kill it (SIGKILL, no chance to flush anything), so a test
    that starts it again sees what a crash leaves behind. The server's output goes to log
    (default: server.log in data_dir)."""
    port = free_port()
    env = {**os.environ, "FEWSHOT_DATA_DIR": str(data_dir), **(env or {})}
    log = Path(log) if log is not None else data_dir / "server.log"
    output = open(log, "w")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
        ],
        cwd=ROOT,
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log.read_text()) from None
                time.sleep(0.5)
        yield url, server
    finally:
        server.kill()
        server.wait(timeout=30)
        output.close()


@contextmanager
def running_app(data_dir: Path, timeout: float = 120, env: dict | None = None) -> Iterator[str]:
    """Yield the base URL of the app serving `data_dir` (app_server); then kill the server."""
    with app_server(data_dir, timeout, env=env) as (url, _):
        yield url


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system, all threads) the process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(
    pid: int, busy_s: float = 0.05, window_s: float = 1.0, limit_s: float = 600
) -> float:
    """Wait until the process uses less than busy_s of CPU in each of two windows of window_s in a
    row (a background UMAP warm-up or cross-validation has finished); returns the seconds waited."""
    start = time.monotonic()
    calm, last = 0, cpu_seconds(pid)
    while calm < 2 and time.monotonic() - start < limit_s:
        time.sleep(window_s)
        now = cpu_seconds(pid)
        calm = calm + 1 if now - last < busy_s else 0
        last = now
    return time.monotonic() - start
