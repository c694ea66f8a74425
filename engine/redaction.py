"""The one redaction point: every secret the extension loads is registered here, and every text
that leaves the extension (errors, logs, events, route answers, journal rows) goes through
:func:`scrub`."""
from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern | None = None


def register(value: Any) -> None:
    """Remember a secret (and its URL-encoded forms) so that scrub() masks it everywhere."""
    global _pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < _MIN_LEN:
        return
    forms = {value, quote(value, safe=""), quote_plus(value)}
    # a PEM key is also masked line by line (a log may show one line)
    forms.update(line for line in value.splitlines() if len(line) >= 16)
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def scrub(text: Any) -> Any:
    """Mask every registered secret in a string; walk dicts/lists; leave other values alone."""
    if isinstance(text, str):
        pat = _pattern
        return pat.sub(MASK, text) if pat is not None and text else text
    if isinstance(text, dict):
        return {k: scrub(v) for k, v in text.items()}
    if isinstance(text, (list, tuple)):
        return type(text)(scrub(v) for v in text)
    return text


def known() -> int:
    return len(_secrets)


def strip_query(url: str) -> str:
    """A URL for messages: scheme, host and path only (queries often carry keys or signatures)."""
    base = str(url).split("#", 1)[0]
    if "?" in base:
        base = base.split("?", 1)[0] + "?…"
    return scrub(base)


class RedactingFilter(logging.Filter):
    """Installed on the extension's logger (and its handlers): scrubs message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            msg = str(record.msg)
        record.msg = scrub(msg)
        record.args = None
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


def get_logger(name: str = "comfyui_remote") -> logging.Logger:
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
    return log


def describe(e: BaseException, limit: int = 160) -> str:
    """A short, scrubbed one-line description of an error for task messages."""
    text = getattr(e, "detail", None) or str(e) or e.__class__.__name__
    text = " ".join(scrub(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
