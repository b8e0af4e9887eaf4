"""Structured agent logs: one line per event, `key=value` fields (logfmt), on stderr.

    ts=2026-11-28T03:30:00.123Z level=warning logger=byol.agent event=stream_broken code=UNAVAILABLE
    retry_in_s=0.4 hint="start the coordinator or check --coordinator"

Use `event(log, "name", level=..., **fields)`; a `hint` field tells the user what to do.
"""
from __future__ import annotations

import logging
import sys
import time

_HANDLER_FLAG = "_byol_agent_kv"


def _quote(value: object) -> str:
    s = str(value)
    if s == "" or any(c in s for c in ' "=\t\n'):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


class KeyValueFormatter(logging.Formatter):
    """Renders a record as logfmt; fields passed via `extra={"kv": {...}}` follow the event name."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}"]
        kv = getattr(record, "kv", None)
        if kv is not None:
            parts.append(f"event={_quote(record.getMessage())}")
            parts.extend(f"{k}={_quote(v)}" for k, v in kv.items() if v is not None)
        else:  # a plain library log line
            parts.append(f"msg={_quote(record.getMessage())}")
        if record.exc_info:
            parts.append(f"error={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def event(log: logging.Logger, name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log one event with its fields (None values are left out)."""
    if log.isEnabledFor(level):
        log.log(level, name, extra={"kv": fields})


def setup(level: str = "info") -> None:
    """Route every logger to stderr in logfmt (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, _HANDLER_FLAG, False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        setattr(handler, _HANDLER_FLAG, True)
        handler.setFormatter(KeyValueFormatter())
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
