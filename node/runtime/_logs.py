"""Structured logs: one JSON object per line on stderr, with the node's name on each."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["event", "logging_at", "setup_logging"]

_LOG = logging.getLogger("node")


class _JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self._node = node

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "node": self._node,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            doc.update(fields)
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(node: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("grpc").setLevel(max(root.level, logging.INFO))  # its debug is noise


def logging_at(level: int) -> bool:
    """Whether ``event`` at ``level`` would log: per-message and per-block debug lines check
    this first, so their fields are not even formatted when debug logging is off."""
    return _LOG.isEnabledFor(level)


def event(
    name: str, level: int = logging.INFO, *, exc: BaseException | None = None, **fields: Any
) -> None:
    """Log ``name`` with structured ``fields`` (``event("commit", height=3)``); ``exc``
    adds its traceback as the line's ``error`` field (still one line: JSON escapes it)."""
    if _LOG.isEnabledFor(level):
        _LOG.log(level, name, exc_info=exc, extra={"fields": fields})
