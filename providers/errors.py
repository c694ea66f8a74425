"""The one error hierarchy of the pack.

Providers raise these to *describe* what a service answered; the engine (``engine/rules.py``)
alone decides what follows — whether a create may be sent again, whether a look at a task is
retried, when a task has ended. Messages name provider, profile, node and field where known and
say what to do; none carries a secret or a traceback (the engine still scrubs every message
through the redaction point before it leaves the extension).
"""
from __future__ import annotations

from typing import Any, Optional


def _scrub(text: str) -> str:
    from ..engine.redaction import scrub  # (engine imports providers: import lazily)

    return scrub(text)


class RemoteError(Exception):
    """Base of every error the extension raises."""

    retryable = False
    kind = "error"

    def __init__(self, detail: str = "", *, provider: str = "", profile: str = "", node: str = "",
                 field: str = "", hint: str = "", code: Any = None, remote_node: str = "",
                 node_class: str = "", retry_after: Optional[float] = None):
        self.detail = detail
        self.provider = provider
        self.profile = profile
        self.node = node
        self.field = field
        self.hint = hint
        self.code = code
        self.remote_node = remote_node
        self.node_class = node_class
        self.retry_after = retry_after
        super().__init__(_scrub(detail))

    def with_context(self, **ctx: str) -> "RemoteError":
        """Fill in context the raiser did not know (provider, profile, node), keep the rest."""
        for key, value in ctx.items():
            if value and not getattr(self, key, None):
                setattr(self, key, value)
        return self

    def __str__(self) -> str:
        where = "/".join(x for x in (self.provider, self.profile) if x)
        head = f"[{where}] " if where else ""
        who = f"{self.node}: " if self.node else ""
        what = self.detail or self.__class__.__name__
        if self.field:
            what = f"{what} (field '{self.field}')"
        if self.remote_node:
            cls = f" ({self.node_class})" if self.node_class else ""
            what = f"{what} [remote node {self.remote_node}{cls}]"
        tail = f" — {self.hint}" if self.hint else ""
        return _scrub(f"{head}{who}{what}{tail}")  # the one redaction point sees every message

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": str(self), "code": self.code,
                "field": self.field or None, "remote_node": self.remote_node or None}


# ---------------------------------------------------------------- definite answers (nothing was created)

class ConfigError(RemoteError):
    """The profile is missing something (a key, a URL). Names the env var or profile field."""

    kind = "config"


class AuthError(RemoteError):
    kind = "auth"


class QuotaError(RemoteError):
    """Balance, credits or quota exhausted."""

    kind = "quota"


class RejectedInput(RemoteError):
    """The service (or pre-flight) refused an input; ``field`` names which."""

    kind = "rejected_input"


class ContentRejected(RejectedInput):
    """A content-safety filter refused the input or the output."""

    kind = "content_safety"


class NotFound(RemoteError):
    """Unknown workflow, app, template, endpoint or file."""

    kind = "not_found"


class TaskGone(NotFound):
    """The service itself (an authenticated, documented answer) says it does not know the task.
    Only the engine decides whether that ends the task (after a confirmation window)."""

    kind = "task_gone"


class NotSupported(RemoteError):
    kind = "not_supported"


class RemoteFailure(RemoteError):
    """The remote run failed; ``remote_node``/``node_class`` say where."""

    kind = "remote_failure"


# ---------------------------------------------------------------- try again later

class TransientError(RemoteError):
    """Worth retrying (5xx, a dropped connection); ``retry_after`` in seconds when known."""

    retryable = True
    kind = "transient"


class ServerError(TransientError):
    """An HTTP 5xx (or a CDN error page): the service may or may not have acted."""

    kind = "server_error"


class RateLimited(TransientError):
    """HTTP 429 or a documented throttling answer: the request was refused, nothing was done."""

    kind = "rate_limited"


class CapacityBusy(TransientError):
    """The account's concurrent-task limit is reached; nothing was created. The engine waits in a
    local queue with backoff and says so in the task's message instead of failing."""

    kind = "capacity"


class NotSent(TransientError):
    """The request never left this machine (DNS, refused, TLS, no free connection): resending it
    cannot do anything twice."""

    kind = "not_sent"


class AnswerLost(TransientError):
    """The request was sent, then the connection dropped or timed out before the whole answer
    arrived: the service may have acted on it."""

    kind = "answer_lost"


class AmbiguousSubmit(TransientError):
    """A create may or may not have reached the service and the engine could not find out; the
    task is kept in the journal and the message says how to check before queueing again."""

    kind = "ambiguous_submit"


class ProtocolError(RemoteError):
    """The service answered something we cannot read (malformed JSON, missing fields)."""

    kind = "protocol"


class RemoteTimeout(RemoteError):
    kind = "timeout"


class Interrupted(RemoteError):
    """The local prompt was interrupted while waiting."""

    kind = "interrupted"
