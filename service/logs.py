"""Structured logs: one JSON object per line, with the trace and correlation ids.

Every line carries ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the current
OpenTelemetry ``trace_id`` / ``span_id`` and the request's ``correlation_id`` (the
``X-Correlation-ID`` header, or the one a command generated), plus the ``extra`` fields the call
passed. Personal data stays out by construction — requests are logged by method, route template
and status, never by body, query string or client address, and SQL parameters are never logged —
and, in case a message or traceback quotes some anyway, e-mail addresses and phone numbers are
masked before a line is written (``redact``).
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

from service.ids import uuid4

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Phone numbers as people write them — grouped ("+86 138 1234 5678", "010-6552 1234",
# "(010) 65521234") or a bare mobile number ("13812345678") — but not bare counts, positions,
# amounts, dates or ids, which logs need.
_PHONE = re.compile(
    r"(?<![\w.+-])(?:(?:\+\d{1,3}[ -]?)?\(?\d{2,4}\)?[ -]\d{3,4}[ -]?\d{3,4}"
    r"|(?:\+?86[ -]?)?1[3-9]\d{9})(?![\w-])")

# LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName",
                                                               "color_message"}  # uvicorn's


def redact(text: str) -> str:
    """Masks e-mail addresses and phone numbers (personal data must not reach the logs)."""
    if "@" in text:
        text = _EMAIL.sub("[email]", text)
    return _PHONE.sub("[phone]", text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line with trace and correlation ids."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            doc["trace_id"] = format(span.trace_id, "032x")
            doc["span_id"] = format(span.span_id, "016x")
        cid = getattr(record, "correlation_id", None) or correlation_id.get()
        if cid:
            doc["correlation_id"] = cid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in doc and not key.startswith("_"):
                doc[key] = value if isinstance(value, int | float | bool | None) else \
                    redact(str(value))
        if record.exc_info:
            doc["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """For people at a terminal: the same fields on one readable line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        span = trace.get_current_span().get_span_context()
        cid = correlation_id.get()
        ids = []
        if span.is_valid:
            ids.append(f"trace_id={span.trace_id:032x}")
        if cid:
            ids.append(f"correlation_id={cid}")
        return f"{line} [{' '.join(ids)}]" if ids else line


def logging_config(level: str = "INFO", fmt: str = "json",
                   levels: dict[str, str] | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document (also handed to uvicorn for its workers)."""
    formatter = "service.logs.JsonFormatter" if fmt == "json" else "service.logs.TextFormatter"
    loggers: dict[str, Any] = {
        # uvicorn's own lines go through our handler; its access log is replaced by ours
        # (it would log client addresses and query strings).
        "uvicorn": {"level": level, "handlers": [], "propagate": True},
        "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
        "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        # Chatty libraries stay at WARNING unless asked for.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "nats": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},  # the embedded server's start-up chatter
    }
    for name, lvl in (levels or {}).items():
        loggers[name] = {"level": lvl.upper()}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "default",
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": loggers,
    }


def configure_logging(level: str = "INFO", fmt: str = "json",
                      levels: dict[str, str] | None = None) -> dict[str, Any]:
    """Installs the handler on the root logger; returns the config for uvicorn to reuse."""
    config = logging_config(level, fmt, levels)
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    return config


_QUIET_PATHS = frozenset({"/healthz", "/readyz"})  # probes: logged only when they fail
_access = logging.getLogger("opsledger.access")


class AccessLogMiddleware:
    """Pure ASGI: sets the correlation id and logs one line per HTTP request.

    The line names the route template (``/projects/{record_id}/approve``) or the path, never
    the query string, body or client address; the ``X-Correlation-ID`` header (or a new id) is
    echoed.
    """

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = request_correlation_id(scope)
        token = correlation_id.set(cid)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"x-correlation-id" for k, _ in headers):
                    headers.append((b"x-correlation-id", cid.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if status >= 500 or path not in _QUIET_PATHS:
                # The route template when routing recorded one; else the path (ids, no query).
                route = getattr(scope.get("route"), "path", None) or path
                log_access(scope.get("method"), route, status, started)
            correlation_id.reset(token)


def request_correlation_id(scope: dict[str, Any]) -> str:
    """The request's ``X-Correlation-ID`` when it is a sensible one, else a new id."""
    for name, value in scope.get("headers") or ():
        if name == b"x-correlation-id":
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= 200 and text.isprintable():
                return text
            break
    return str(uuid4())


def log_access(method: str | None, route: str, status: int, started: float) -> None:
    """The access-log line of one request (``started``: its ``time.perf_counter()``)."""
    _access.log(logging.WARNING if status >= 500 else logging.INFO, "request",
                extra={"method": method, "route": route, "status": status,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2)})
