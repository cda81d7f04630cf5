"""Helpers for tests and benchmarks that run the service (or a Redis) as a process of its own."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request

START_TIMEOUT = 20.0  # seconds for `python app.py` to answer /healthz


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> int | None:
    """The status of GET /healthz, None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    """Wait until `proc` (a `python app.py`) answers /healthz on `port` with 200."""
    deadline = time.monotonic() + timeout
    while health(port) != 200:
        assert proc.poll() is None, f"python app.py exited with {proc.returncode}"
        assert time.monotonic() < deadline, "python app.py did not start"
        time.sleep(0.1)
