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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_app(data_dir: Path, timeout: float = 120) -> Iterator[str]:
    """Yield the base URL of `streamlit run app.py` serving `data_dir`; then kill it (SIGKILL, no
    chance to flush anything), so a test that starts it again sees what a crash leaves behind."""
    port = free_port()
    env = {**os.environ, "FEWSHOT_DATA_DIR": str(data_dir)}
    log = open(data_dir / "server.log", "w")  # noqa: SIM115 - closed in finally
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
        stdout=log,
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
                    raise RuntimeError((data_dir / "server.log").read_text()) from None
                time.sleep(0.5)
        yield url
    finally:
        server.kill()
        server.wait(timeout=30)
        log.close()
