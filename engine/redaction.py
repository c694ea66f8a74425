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
_MIN_LEN = 4  # from this length a secret is masked wherever it appears
_MIN_WORD = 2  # shorter secrets (a user name like "bob") are masked where they stand as a word

_lock = threading.Lock()
_secrets: set[str] = set()
_words: set[str] = set()
_pattern: re.Pattern | None = None


def register(value: Any) -> None:
    """Remember a secret (and its URL-encoded forms) so that scrub() masks it everywhere."""
    global _pattern
    if not isinstance(value, str):
        return
    value = value.strip()
    if len(value) < _MIN_WORD:
        return
    forms = {value, quote(value, safe=""), quote_plus(value)}
    # a PEM key is also masked line by line (a log may show one line)
    forms.update(line for line in value.splitlines() if len(line) >= 16)
    long = {f for f in forms if len(f) >= _MIN_LEN}
    short = forms - long
    with _lock:
        if long <= _secrets and short <= _words:
            return
        _secrets.update(long)
        _words.update(short)
        parts = [re.escape(s) for s in sorted(_secrets, key=len, reverse=True)]
        parts += [rf"(?<![\w]){re.escape(w)}(?![\w])" for w in sorted(_words, key=len, reverse=True)]
        _pattern = re.compile("|".join(parts))


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
    return len(_secrets) + len(_words)


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@?#]*@")


def strip_query(url: str) -> str:
    """A URL for messages: scheme, host and path only — no query (it often carries keys or
    signatures) and no ``user:password@``."""
    base = _USERINFO.sub(r"\1", str(url).split("#", 1)[0])
    if "?" in base:
        base = base.split("?", 1)[0] + "?…"
    return scrub(base)


class RedactingFilter(logging.Filter):
    """Installed on every logger of the extension (``get_logger``): scrubs the message, its
    arguments and the formatted traceback before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            msg = str(record.msg)
        record.msg = scrub(msg)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # handlers print exc_text, which is scrubbed below
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def get_logger(name: str = "comfyui_remote") -> logging.Logger:
    """The extension's logger ``name`` (under ``comfyui_remote``) with the redacting filter. A filter
    only sees its own logger's records, so every module takes its logger from here."""
    log = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in log.filters):
        log.addFilter(RedactingFilter())
    return log


def describe(e: BaseException, limit: int = 160) -> str:
    """A short, scrubbed one-line description of an error for task messages."""
    text = getattr(e, "detail", None) or str(e) or e.__class__.__name__
    text = " ".join(scrub(str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
