"""No query string reaches a log line as given: every log record of a server process has the values of the
query strings it holds replaced (``/api/v1/customers?phone=***``), its access log included. Personal numbers
travel in request bodies (``POST /customers/search``), never in URLs; this catches a client that still puts
one there, and any other value a query string carries."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

_URL_QUERY = re.compile(r"(/[^\s?#\"']*)\?([^\s#\"']*)")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]-]{0,39}")
REDACTED = "***"

_lock = threading.Lock()
_installed = False


def _query_names(match: re.Match[str]) -> str:
    names = [part.partition("=")[0] for part in match[2].split("&") if part]
    shown = "&".join(f"{n}={REDACTED}" if _NAME.fullmatch(n) else REDACTED for n in names)
    return f"{match[1]}?{shown}"


def redact_queries(text: str) -> str:
    """``text`` with the value of every parameter of every query string replaced (parameter names kept
    when they look like names)."""
    return _URL_QUERY.sub(_query_names, text) if "?" in text else text


def _redact(value: Any) -> Any:
    return redact_queries(value) if isinstance(value, str) and "?" in value else value


def _redacting(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_queries(record.msg)
        if isinstance(record.args, tuple):
            if any(isinstance(a, str) and "?" in a for a in record.args):
                record.args = tuple(_redact(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact(v) for k, v in record.args.items()}
        return record

    return factory


def install_redaction() -> None:
    """Redact query strings in every log record this process makes from now on (once per process: a
    record factory, so it holds whichever logger or handler writes the line — uvicorn's access log, its
    error log, ours). Costs a substring test per record."""
    global _installed
    with _lock:
        if not _installed:
            logging.setLogRecordFactory(_redacting(logging.getLogRecordFactory()))
            _installed = True
