"""JSON logs with request ids and no personal data (docs/security.md, "Threats considered").

- ``JsonFormatter``: one JSON object per line with time, level, logger, message, the request id
  of the call being served and any ``extra={...}`` fields.
- ``request_id_of``: the ``x-request-id`` of a call's metadata (or a new one); the edge wrapper
  of every method (nodes.handlers) puts it in ``REQUEST_ID`` for the handler's logs.
- ``code_ref``: what a log may say about a code: a short hash of its code id, never the
  masked name or the ID tail.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import secrets
import sys
import time
from typing import Any

import grpc

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("hcx_request_id", default="")
REQUEST_ID_HEADER = "x-request-id"
# Never written to a log, even when passed in ``extra`` by mistake.
PERSONAL_FIELDS = frozenset({"masked_name", "id_tail", "id_number", "full_name", "name", "token"})
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def code_ref(code_id: bytes) -> str:
    """A stable, non-reversible reference to a code id for logs (first 12 hex of SHA-256)."""
    return hashlib.sha256(b"hcx-log:" + code_id).hexdigest()[:12]


class JsonFormatter(logging.Formatter):
    """One JSON object per record; extra fields kept, personal fields dropped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in PERSONAL_FIELDS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(*, verbose: bool, json_format: bool | None = None) -> None:
    """Root logging for an hcx process: JSON when stderr is not a terminal (servers)."""
    if json_format is None:
        json_format = not sys.stderr.isatty()
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)


def request_id_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The call's ``x-request-id`` (1 to 64 characters), or a new random one."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= 64:
            return value
    # 16 hex digits as before (uuid4().hex[:16]), at a fraction of the cost of a UUID per call.
    return secrets.token_hex(8)


def elapsed_ms(began: float) -> float:
    """Milliseconds since ``began`` (perf_counter), rounded for logs."""
    return round((time.perf_counter() - began) * 1000, 2)
