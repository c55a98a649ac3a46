"""Keys kept out of log records: image-tool's own, and those of the HTTP libraries below it.

httpcore2 logs every response's headers at DEBUG (a relay may echo the key in one), and hpack,
under an HTTP/2 client a user injects, logs request headers. A filter on each logger these log
through rewrites every record with the keys of every client built so far scrubbed. A logger's
filters do not see its children's records, so each name is filtered, not a parent. Levels and
handlers are the user's and stay as they are.
"""

from __future__ import annotations

import logging
import threading

from .._wire.redaction import REDACTED, scrub

LOGGERS = (
    "image_tool",
    "httpx2",  # each request, at INFO
    "httpcore2.connection",
    "httpcore2.http11",
    "httpcore2.http2",
    "httpcore2.proxy",
    "httpcore2.socks",
    "hpack.hpack",  # h2's header coding, when an injected client speaks HTTP/2
    "hpack.table",
)
"""Every logger image-tool and its HTTP libraries log through (h11 and h2 log nothing)."""

_keys: tuple[str, ...] = ()  # replaced whole, never changed in place: filters read it unlocked
_adding = threading.Lock()


class KeyFilter(logging.Filter):
    """Rewrites a record's message (and its traceback, when that holds a key) without any key
    known; a record that cannot be scrubbed is dropped, never let through as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg, record.args = scrubbed(record.getMessage()), ()
            trace = record.exc_text or ""
            if record.exc_info and not trace:
                trace = logging.Formatter().formatException(record.exc_info)
            if trace and (text := scrubbed(trace)) != trace:
                # The standard formatters show exc_text as it is; others may format the exception
                # again, so it goes.
                record.exc_text, record.exc_info = text, None
            if record.stack_info:
                record.stack_info = scrubbed(record.stack_info)
        except Exception:
            return False
        return True


KEY_FILTER = KeyFilter()


def hide_in_logs(key: str) -> None:
    """Keeps ``key`` out of every later record of ``LOGGERS``. Idempotent: each call puts the
    one filter back where it is missing (a logging configuration may have replaced a logger's)."""
    global _keys
    if key and key not in _keys:
        with _adding:
            # Longest first: a key holding another is scrubbed whole.
            _keys = tuple(sorted({*_keys, key}, key=len, reverse=True))
    for name in LOGGERS:
        logging.getLogger(name).addFilter(KEY_FILTER)  # a no-op when it is there


def scrubbed(text: str) -> str:
    """``text`` without any key known, nor anything shaped like a key."""
    for key in _keys:
        text = text.replace(key, REDACTED)
    return scrub(text)
