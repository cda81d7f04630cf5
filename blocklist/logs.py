"""Log lines: JSON on stderr (python-json-logger), each with the id of the request it serves.

`CALLMARK_LOG_FORMAT=text` gives plain lines for a terminal. The HTTP edge sets the request
id (blocklist/web/observability.py); the launcher, the scheduler and the CLI log through the
same handler.
"""
from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from gunicorn import glogging
from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("callmark_request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, message, request_id and any extras."""
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})


def effective_format(form: str, profile: str) -> str:
    """`json` or `text`: `auto` is text on a terminal outside production (a person reads it),
    JSON otherwise (a log collector does)."""
    if form != "auto":
        return form
    return "text" if profile != "production" and sys.stderr.isatty() else "json"


def configure_logging(level: str, form: str = "json", profile: str = "production") -> None:
    """One stderr handler on the root logger (once per process), JSON unless `form` (or `auto`
    on a terminal) says text."""
    form = effective_format(form, profile)
    root = logging.getLogger()
    if not any(getattr(h, "_callmark", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        if form == "text":
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        else:
            handler.setFormatter(json_formatter())
        handler.addFilter(RequestIdFilter())
        handler._callmark = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


class GunicornJsonLogger(glogging.Logger):
    """gunicorn's own lines (start, workers, signals) in the same JSON as the service's."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(json_formatter())
            handler.addFilter(RequestIdFilter())
