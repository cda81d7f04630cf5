"""A real 3-master Redis Cluster on loopback ports, for the suites that run on one
(CALLMARK_TEST_CLUSTER=1; .ci/run does). redis-server from PATH (Redis 7 here) or the
embedded package's; slots are assigned and nodes introduced with plain cluster commands."""
from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

import redis

from blocklist.embedded import server_binary

MASTERS = 3
SLOTS = 16384


def _free_port() -> int:
    """A port that is free together with its cluster bus port (port + 10000)."""
    while True:
        port = random.randint(20000, 40000)
        try:
            for candidate in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", candidate))
            return port
        except OSError:
            continue


def _binary() -> str:
    return shutil.which("redis-server") or server_binary()


@contextmanager
def cluster():
    """Yields the URL of one node of a fresh cluster; stops it afterwards."""
    folder = tempfile.mkdtemp(prefix="cm-cluster-")
    ports, procs = [], []
    try:
        for i in range(MASTERS):
            port = _free_port()
            ports.append(port)
            procs.append(subprocess.Popen(
                [_binary(), "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", f"nodes-{i}.conf", "--save", "", "--appendonly", "no", "--dir", folder],
                stdout=subprocess.DEVNULL))
        nodes = [redis.Redis(port=port) for port in ports]
        for node in nodes:
            _wait(node.ping)
        per = SLOTS // MASTERS
        for i, node in enumerate(nodes):
            end = SLOTS - 1 if i == MASTERS - 1 else (i + 1) * per - 1
            node.execute_command("CLUSTER", "ADDSLOTS", *range(i * per, end + 1))
        for port in ports[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        for node in nodes:
            _wait(lambda node=node: b"cluster_state:ok" in node.execute_command("CLUSTER", "INFO")
                  and int(node.execute_command("CLUSTER", "INFO").split(b"cluster_known_nodes:")[1][:1]) == MASTERS)
        yield f"redis://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(ready, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster did not come up")
        time.sleep(0.05)
