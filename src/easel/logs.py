"""Logging: text or JSON lines, each carrying the request id of the request it belongs to."""

from __future__ import annotations

import contextvars
import logging
import time
from typing import Any

import orjson

#: The id of the request being handled in this context (copied into worker threads by anyio).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

#: LogRecord attributes that are not the caller's `extra` fields.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
#: ... and uvicorn's own `extra`: its message again, with terminal colours.
_STANDARD.add("color_message")


class _WithRequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and value is not None:
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


#: Control characters (a client's `%0a` in a path or prompt) written as escapes in text logs, so
#: no field can forge a line of its own. JSON logs escape them already.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)}


def clean(text: object) -> str:
    return str(text).translate(_CONTROLS)


class TextFormatter(logging.Formatter):
    """The classic line, with the request id and `extra` fields appended as key=value; whatever
    came from a client is escaped (a traceback, ours, keeps its lines)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = clean(record.message)
        line = super().formatMessage(record)
        extra = " ".join(
            f"{k}={clean(v)}" for k, v in record.__dict__.items() if k not in _STANDARD and v is not None
        )
        return f"{line} [{extra}]" if extra else line


def configure(level: str, fmt: str) -> None:
    """Send every logger (uvicorn's included) through one stderr handler in the chosen format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_WithRequestId())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every upstream call at INFO; the access log and the upstream's metrics say it once.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
