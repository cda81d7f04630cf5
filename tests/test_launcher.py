"""`python app.py` as an operator runs it: real subprocesses on their own data folders and
ports, a real embedded Redis, real signals.

- One data folder, one launcher: a second start waits for the first to exit, or exits 1
  with "data folder ... in use"; CLI commands still attach to the running server.
- The embedded Redis (and the scheduler) end with the launcher, even when it is killed; a
  server left running in the folder is shut down cleanly by the next start, which says so.
- gunicorn's own rejections answer in the API's error shape.
- X-Forwarded-Proto is believed from CALLMARK_FORWARDED_ALLOW_IPS only; production admin
  cookies are always Secure.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import redis

from blocklist.config import Config
from blocklist.embedded import server_binary
from blocklist.errors import ConfigError
from blocklist.web import create_app
from tests.processes import START_TIMEOUT, free_port, health, wait_healthy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GONE_TIMEOUT = 5.0  # seconds for processes to end after their launcher did


def running(pid: int) -> bool:
    """A live process (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


def wait_gone(pids: list[int], timeout: float = GONE_TIMEOUT) -> list[int]:
    """Wait for `pids` to end; return those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if running(p)]


class Launcher:
    """A `python app.py` subprocess in a session of its own, its stderr in a file."""

    def __init__(self, folder: str, port: int, log_path: str, **env: str):
        self.folder, self.port, self.log_path = folder, port, log_path
        environ = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CALLMARK_REDIS_SOCKET")}
        environ.update(CALLMARK_DATA_DIR=folder, PORT=str(port), CALLMARK_PROFILE="development",
                       CALLMARK_WORKERS="1", CALLMARK_THREADS="2", CALLMARK_PUBLISH_INTERVAL="0",
                       CALLMARK_SWEEP_INTERVAL="0", CALLMARK_LOG_LEVEL="INFO", CALLMARK_LOG_FORMAT="text")
        environ.update(env)
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=environ, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(40)

    def kill_all(self) -> None:
        """Tear-down: whatever of this launcher's session is left."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def redis_pid(folder: str) -> int:
    """The pid of the redis-server answering on the data folder's socket."""
    client = redis.Redis(unix_socket_path=os.path.join(folder, "redis.sock"), socket_timeout=2)
    return int(client.info("server")["process_id"])


@pytest.fixture
def folder():
    """A data folder with a short path: Unix socket paths are limited to about 100 bytes."""
    path = tempfile.mkdtemp(prefix="cm-l-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def launch(folder, tmp_path):
    started: list[Launcher] = []
    redis_pids: list[int] = []

    def start(port: int | None = None, **env: str) -> Launcher:
        launcher = Launcher(folder, port or free_port(), str(tmp_path / f"app-{len(started)}.log"), **env)
        started.append(launcher)
        return launcher

    start.redis_pids = redis_pids  # servers a test wants ended at tear-down, whatever happened
    yield start
    for launcher in started:
        launcher.kill_all()
    for pid in redis_pids:
        if running(pid):
            os.kill(pid, signal.SIGKILL)


# --- one data folder, one launcher -------------------------------------------------------------

def test_second_start_on_a_data_folder_in_use_waits_for_the_first_to_exit_then_serves(launch, folder):
    first = launch()
    wait_healthy(first.port, first.proc)
    first_redis = redis_pid(folder)
    launch.redis_pids.append(first_redis)

    impatient = launch(CALLMARK_START_WAIT="0.5")
    second = launch(CALLMARK_START_WAIT="30")
    assert impatient.proc.wait(20) == 1
    last_line = impatient.log().strip().splitlines()[-1]
    assert last_line == f"callmark: data folder {folder} in use by pid {first.proc.pid} (app.py); stop it, " \
                        "or set CALLMARK_DATA_DIR to another folder", last_line
    deadline = time.monotonic() + START_TIMEOUT
    while "in use by" not in second.log():
        assert second.proc.poll() is None and time.monotonic() < deadline, second.log()
        time.sleep(0.1)
    time.sleep(0.5)
    assert health(second.port) is None, "the second start serves while the first holds the data folder"
    assert health(first.port) == 200 and redis_pid(folder) == first_redis

    assert first.stop() == 0
    assert not wait_gone([first_redis])
    wait_healthy(second.port, second.proc)
    second_redis = redis_pid(folder)
    launch.redis_pids.append(second_redis)
    assert second_redis != first_redis
    for _ in range(4):  # the first one's exit must not take the second one's Redis with it
        assert health(second.port) == 200
        time.sleep(0.5)


def test_cli_commands_use_the_running_embedded_redis_or_one_of_their_own(launch, folder):
    server = launch()
    wait_healthy(server.port, server.proc)
    server_redis = redis_pid(folder)
    launch.redis_pids.append(server_redis)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CALLMARK_REDIS_SOCKET")}
    env.update(CALLMARK_DATA_DIR=folder, CALLMARK_LOG_LEVEL="WARNING")
    flask = [sys.executable, "-m", "flask", "--app", "app"]

    created = subprocess.run(flask + ["keys", "create", "--name", "acme", "--scope", "feed"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    assert health(server.port) == 200 and redis_pid(folder) == server_redis  # attached, left running
    server.proc.send_signal(signal.SIGKILL)  # its Redis goes with it (flushing the AOF)
    assert not wait_gone([server_redis])

    listed = subprocess.run(flask + ["keys", "list"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "acme" in listed.stdout
    assert not os.path.exists(os.path.join(folder, "redis.sock")), "the CLI's own server outlived it"


# --- the embedded Redis ends with its launcher -------------------------------------------------

def test_a_killed_launcher_takes_its_embedded_redis_and_scheduler_with_it(launch, folder):
    server = launch(CALLMARK_SWEEP_INTERVAL="3600")
    wait_healthy(server.port, server.proc)
    server_redis = redis_pid(folder)
    launch.redis_pids.append(server_redis)
    helpers = children(server.proc.pid)  # the Redis, the scheduler, the workers
    assert server_redis in helpers and len(helpers) >= 3

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    assert not wait_gone(helpers), "processes outlived their killed launcher"

    again = launch()
    wait_healthy(again.port, again.proc)
    launch.redis_pids.append(redis_pid(folder))
    assert "left running" not in again.log()


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(item.decode().partition("=")[::2] for item in f.read().split(b"\0") if item)


def test_a_worker_that_exits_leaves_the_scheduler_and_the_metrics_folder_alone(launch, folder):
    server = launch(CALLMARK_SWEEP_INTERVAL="3600")
    wait_healthy(server.port, server.proc)
    launch.redis_pids.append(redis_pid(folder))
    helpers = {pid: cmdline(pid) for pid in children(server.proc.pid)}
    scheduler = next(pid for pid, command in helpers.items() if b"blocklist.run.scheduler" in command)
    worker = next(pid for pid, command in helpers.items() if b"app.py" in command)
    metrics = environ_of(scheduler)["PROMETHEUS_MULTIPROC_DIR"]

    os.kill(worker, signal.SIGTERM)  # as a max_requests restart or a worker timeout ends one
    assert not wait_gone([worker])
    wait_healthy(server.port, server.proc)  # gunicorn booted a new worker
    time.sleep(1)
    assert running(scheduler), "a worker's exit stopped the scheduler"
    assert os.path.isdir(metrics), "a worker's exit removed the metrics folder"
    assert health(server.port) == 200


def test_a_start_shuts_down_a_server_left_running_and_serves_with_its_data(launch, folder):
    socket_path = os.path.join(folder, "redis.sock")
    leftover = subprocess.Popen(  # as the version before this one left it: no watchdog, no pid file
        [server_binary(), "--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700", "--dir", folder,
         "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
         "--logfile", os.path.join(folder, "redis.log")], stdin=subprocess.DEVNULL, start_new_session=True)
    launch.redis_pids.append(leftover.pid)
    client = redis.Redis(unix_socket_path=socket_path)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.set("planted", "kept")
            break
        except (redis.ConnectionError, OSError):
            assert time.monotonic() < deadline, "the planted redis-server did not start"
            time.sleep(0.05)

    server = launch()
    wait_healthy(server.port, server.proc)
    assert f"left running (pid {leftover.pid})" in server.log()
    assert leftover.wait(5) == 0  # shut down, not killed: its AOF was flushed
    fresh = redis_pid(folder)
    launch.redis_pids.append(fresh)
    assert fresh != leftover.pid
    assert redis.Redis(unix_socket_path=socket_path).get("planted") == b"kept"

    assert server.stop() == 0
    assert not wait_gone([fresh])
    assert not os.path.exists(socket_path)
    with pytest.raises(ProcessLookupError):
        os.killpg(server.proc.pid, 0)  # nothing of the launcher's process group is left


# --- gunicorn's own rejections, behind a proxy --------------------------------------------------

PROXY_ADDRESS = "127.0.0.2"  # another loopback address stands in for a TLS terminator


@pytest.fixture(scope="module")
def proxied():
    """One `python app.py` whose gunicorn believes X-Forwarded-Proto from PROXY_ADDRESS only
    (and no ProxyFix: CALLMARK_TRUSTED_PROXIES is 0); its port."""
    folder = tempfile.mkdtemp(prefix="cm-l-")
    log_dir = tempfile.mkdtemp(prefix="cm-l-log-")
    launcher = Launcher(folder, free_port(), os.path.join(log_dir, "app.log"),
                        CALLMARK_FORWARDED_ALLOW_IPS=PROXY_ADDRESS)
    try:
        wait_healthy(launcher.port, launcher.proc)
        yield launcher.port
        assert launcher.stop() == 0
    finally:
        launcher.kill_all()
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(log_dir, ignore_errors=True)


def raw_request(port: int, data: bytes, source: str = "127.0.0.1") -> tuple[int, dict, bytes]:
    """Send `data` as it is; return the status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def assert_json_error(status: int, headers: dict, body: bytes, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(json.loads(body)) == {"error"} and set(error) == {"code", "message", "details"}
    assert error["code"] == code and error["message"] and error["details"] == {}
    assert headers.get("x-request-id")


def test_a_request_line_over_the_limit_answers_414_in_the_json_error_shape(proxied):
    answer = raw_request(proxied, b"GET /v1/numbers/" + b"1" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert_json_error(*answer, 414, "request_line_too_long")


def test_a_request_line_of_5000_bytes_reaches_the_application(proxied):
    answer = raw_request(proxied, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert_json_error(*answer, 404, "not_found")


def test_a_header_too_large_answers_431_in_the_json_error_shape(proxied):
    answer = raw_request(proxied, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n")
    assert_json_error(*answer, 431, "headers_too_large")


def test_a_malformed_request_answers_400_in_the_json_error_shape(proxied):
    answer = raw_request(proxied, b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
    assert_json_error(*answer, 400, "bad_request")


def admin_cookie(port: int, source: str) -> str:
    status, headers, _ = raw_request(port, b"GET /admin HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n"
                                           b"Connection: close\r\n\r\n", source=source)
    assert status == 200
    return headers["set-cookie"]


def test_gunicorn_believes_x_forwarded_proto_only_from_forwarded_allow_ips(proxied):
    assert "Secure" in admin_cookie(proxied, PROXY_ADDRESS).split("; ")
    assert "Secure" not in admin_cookie(proxied, "127.0.0.1").split("; ")  # gunicorn's default trusted it


def test_production_admin_cookies_are_secure_even_over_plain_http(config):
    config.profile = "production"
    config.signing_key = base64.b64encode(os.urandom(32)).decode()
    form = create_app(config).test_client().get("/admin")
    assert form.status_code == 200
    assert "Secure" in form.headers["Set-Cookie"].split("; ")


def test_forwarded_allow_ips_default_to_loopback_only_with_trusted_proxies():
    assert Config.from_env({}).forwarded_allow_ips == ""
    assert Config.from_env({"CALLMARK_TRUSTED_PROXIES": "1"}).forwarded_allow_ips == "127.0.0.1,::1"
    given = {"CALLMARK_TRUSTED_PROXIES": "1", "CALLMARK_FORWARDED_ALLOW_IPS": "10.0.0.7,10.0.0.8"}
    assert Config.from_env(given).forwarded_allow_ips == "10.0.0.7,10.0.0.8"
    with pytest.raises(ConfigError, match="CALLMARK_FORWARDED_ALLOW_IPS must be IP addresses"):
        Config.from_env({"CALLMARK_FORWARDED_ALLOW_IPS": "10.0.0.0/8"})


# --- the ingest benchmark -------------------------------------------------------------------------

def test_ingest_bench_without_wrk_says_how_to_install_it_and_exits_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # it would FLUSH a REDIS_URL
    env["PATH"] = str(tmp_path)  # no wrk (and no redis-server) on it
    done = subprocess.run([sys.executable, "bench/ingest.py", "--quick"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1
    assert "install wrk (Debian package wrk)" in done.stderr.strip().splitlines()[-1]
