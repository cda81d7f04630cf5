"""`python app.py`: the embedded Redis (when REDIS_URL is unset), the scheduler, and
gunicorn with several workers, started in that order and stopped in the reverse one.

The launcher owns the data folder for its whole life (blocklist/embedded.py): a second
`python app.py` on the same folder waits for the first to exit (CALLMARK_START_WAIT), then
starts, or exits 1 with "data folder ... in use". It starts the embedded server once, before
gunicorn forks, and hands its socket to the workers (CALLMARK_REDIS_SOCKET), which connect
with a plain client. The server and the scheduler end with the launcher, even when it is
killed.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import uuid
from http import HTTPStatus

from flask import Flask
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import ThreadWorker

from ..config import MULTIPROC_ENV, Config
from ..embedded import EmbeddedRedis, die_with_parent
from ..errors import ConfigError, DataFolderInUse

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT = 30  # seconds gunicorn gives workers to finish in-flight requests
LIMIT_REQUEST_LINE = 8190  # bytes of method, target and version: gunicorn's most (its default is 4094)


def prepare_metrics() -> None:
    """A fresh folder for the workers' and the scheduler's metrics (prometheus-client's
    multiprocess mode), unless the operator named one; removed again by `serve`."""
    if not os.environ.get(MULTIPROC_ENV):
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="callmark-metrics-")
        os.environ["CALLMARK_OWN_METRICS_DIR"] = "1"


def _rejection(exc: Exception) -> tuple[int, str, str]:
    """Status, error code and message for a request gunicorn itself turns away."""
    if isinstance(exc, http_errors.LimitRequestLine):
        return 414, "request_line_too_long", f"the request line is longer than {LIMIT_REQUEST_LINE} bytes"
    if isinstance(exc, http_errors.LimitRequestHeaders):
        return 431, "headers_too_large", "the request has too many headers, or one that is too long"
    if isinstance(exc, http_errors.UnsupportedTransferCoding):
        return 501, "not_implemented", "the request's transfer coding is not supported"
    if isinstance(exc, http_errors.ForbiddenProxyRequest):
        return 403, "forbidden", "PROXY protocol lines are not accepted from this address"
    if isinstance(exc, http_errors.ConfigurationProblem):
        return 500, "internal_error", "the server cannot handle this request as configured"
    if isinstance(exc, (http_errors.ParseException, ssl.SSLError)):
        return 400, "bad_request", "the request is not valid HTTP/1.1"
    return 500, "internal_error", "an unexpected error occurred"


class JsonErrorWorker(ThreadWorker):
    """gunicorn's gthread worker, answering the requests that gunicorn rejects before the
    application sees them (a request line or headers too large, malformed HTTP) in the
    API's one error shape instead of gunicorn's HTML page."""

    def handle_error(self, req, client, addr, exc) -> None:
        status, code, message = _rejection(exc)
        if isinstance(exc, (http_errors.ParseException, ssl.SSLError)):
            # The class only: the request line may hold a phone number or a token.
            self.log.warning("rejected a request gunicorn could not take: %s (%d)", exc.__class__.__name__, status)
        else:
            self.log.exception("error handling a request")
        body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
        head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
                "Connection: close\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n"
                f"X-Request-Id: {uuid.uuid4().hex}\r\n\r\n")
        try:
            util.write_nonblock(client, head.encode("latin-1") + body)
        except OSError:
            self.log.debug("the client left before its error answer")


class _Gunicorn(BaseApplication):
    def __init__(self, options: dict, config: Config):
        self.options = options
        self.config = config
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        # Each worker builds its own app (and Redis connections) after the fork, from the
        # launcher's settings.
        from ..web import create_app

        return create_app(self.config)


def claim_embedded(config: Config) -> EmbeddedRedis | None:
    """Without REDIS_URL: own the data folder for the life of this process (waiting up to
    CALLMARK_START_WAIT for an earlier owner to exit), start its Redis, and hand its socket
    to everything started after it."""
    if config.redis_url or config.redis_socket:
        return None
    server = EmbeddedRedis(config.data_dir)
    if not server.claim():
        log.warning("data folder %s is in use by %s; waiting up to %g s for it to exit", server.data_dir,
                    server.holder(), config.start_wait)
        if not server.claim(config.start_wait):
            raise DataFolderInUse(f"data folder {server.data_dir} in use by {server.holder()}; stop it, "
                                  "or set CALLMARK_DATA_DIR to another folder")
        log.info("data folder %s is free: starting", server.data_dir)
    server.start()
    return server


def scheduler_env(config: Config) -> dict[str, str]:
    """The scheduler's environment: the launcher's, on the embedded server's socket when there
    is one, in the same profile (the socket would otherwise make it guess another)."""
    env = dict(os.environ)
    if config.redis_socket and not config.redis_url:
        env["CALLMARK_REDIS_SOCKET"] = config.redis_socket
        env.setdefault("CALLMARK_PROFILE", config.profile)
    return env


def main() -> None:
    """`python app.py`. A bad setting or a data folder in use is one line on stderr and exit status 1."""
    prepare_metrics()  # before anything imports prometheus_client: its workers share the folder
    from .. import logs
    from ..web import create_app

    try:
        config = Config.from_env()
        logs.configure_logging(config.log_level, config.log_format, config.profile)
        server = claim_embedded(config)
        if server is not None:  # everything started from here uses its socket
            config = config.replace(redis_socket=server.socket)
        app = create_app(config)
    except ConfigError as exc:
        sys.exit(f"callmark: {exc.message}")
    except KeyboardInterrupt:
        sys.exit(130)
    serve(app, server)


def serve(app: Flask, server: EmbeddedRedis | None = None) -> None:
    """Run the scheduler and gunicorn on `app`; stop them, then `server`, when gunicorn stops."""
    from .. import logs, metrics  # after prepare_metrics: prometheus-client reads the folder at import

    config = app.config["CALLMARK"]
    server = server or app.extensions["callmark.embedded"]
    if server is not None:
        config = config.replace(redis_socket=server.socket)
    workers = config.workers or max(2, 2 * multiprocessing.cpu_count())
    scheduler = None
    if config.sweep_interval or config.publish_interval:
        scheduler = subprocess.Popen([sys.executable, "-m", "blocklist.run.scheduler"], stdin=subprocess.DEVNULL,
                                     env=scheduler_env(config), preexec_fn=die_with_parent())
    log.info("serving on http://%s:%s with %d workers (%s profile)", config.host, config.port, workers,
             config.profile)
    launcher = os.getpid()
    try:
        _Gunicorn({
            "bind": f"{config.host}:{config.port}",
            "workers": workers,
            "worker_class": "blocklist.run.launcher.JsonErrorWorker",
            "threads": config.threads,
            "graceful_timeout": GRACEFUL_TIMEOUT,
            "limit_request_line": LIMIT_REQUEST_LINE,
            "forwarded_allow_ips": config.forwarded_allow_ips,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": config.log_level.lower(),
            "proc_name": "callmark",
            "child_exit": metrics.child_exit,
            **({"logger_class": logs.GunicornJsonLogger}
               if logs.effective_format(config.log_format, config.profile) == "json" else {}),
        }, config).run()
    finally:
        # A gunicorn worker is a fork that leaves through here too (sys.exit in the child):
        # only the launcher stops what it started.
        if os.getpid() == launcher:
            if scheduler is not None:
                scheduler.terminate()
                scheduler.wait(10)
            if server is not None:
                server.stop()
            # last: until the scheduler has stopped it may still write its metrics there
            if os.environ.get("CALLMARK_OWN_METRICS_DIR") and os.environ.get(MULTIPROC_ENV):
                shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
