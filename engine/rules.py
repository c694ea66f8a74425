"""The rules of every paid step (design §4), decided here once for every provider.

Providers describe what a service answered (an error class from ``providers/errors.py``); these
functions decide what the engine does next:

======================  =====================================  ==========================================
step                    outcome of one attempt                 what the engine does
======================  =====================================  ==========================================
create                  NotSent (request never left)           send again (bounded)
                        RateLimited, CapacityBusy              wait (Retry-After / backoff), send again
                        Auth, Quota, RejectedInput, Config,    fail: the service refused it, nothing paid
                        NotFound, NotSupported, RemoteFailure
                        anything else: 5xx of any number, a    AMBIGUOUS: look the task up by the
                        CDN page, a timeout or drop after      provider's means; trust "not found" only
                        sending, malformed JSON, a bug         after the landing window; else stop and
                                                               tell the user, task kept in the journal
look (poll, find,       TransientError, ProtocolError,         retry with backoff (Retry-After honoured)
outputs, upload,        Auth/NotFound from a proxy, a bug      while watching: forever, visibly;
cancel)                                                        elsewhere: bounded by the step's deadline
                        ConfigError, RejectedInput,            fail the step (not the task while watching)
                        NotSupported
task end                only a terminal state the service      TaskGone ends a task only after it
                        reported (poll)                        persisted for ``gone_confirm_s``
======================  =====================================  ==========================================
"""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from ..providers.errors import (AuthError, CapacityBusy, ConfigError, NotFound, NotSent, NotSupported, ProtocolError,
                                QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure, ServerError)
from .redaction import scrub, strip_query

if TYPE_CHECKING:  # pragma: no cover
    from .transfer import Response


@dataclass(frozen=True)
class RetryPolicy:
    """Every number the rules use. Tests shrink them; nothing else should need to."""

    attempts: int = 5  # tries of one request by the transport (reads) / resends of an unsent create
    base_s: float = 0.5  # backoff: equal jitter on base·2^n, capped
    cap_s: float = 10.0
    retry_after_cap_s: float = 120.0
    request_timeout_s: float = 60.0  # one API answer (not downloads)
    connect_timeout_s: float = 15.0  # connect incl. waiting for a free pooled connection
    idle_timeout_s: float = 60.0  # a download or stream that sends nothing for this long
    landing_s: float = 60.0  # after an ambiguous create: how long "not found" is not trusted
    status_backoff_cap_s: float = 30.0  # a task whose status is unavailable is asked again at least this often
    gone_confirm_s: float = 10.0  # TaskGone must persist this long before it ends a task
    cancel_deadline_s: float = 600.0  # the engine keeps trying to deliver a cancel this long
    download_attempts: int = 6  # per output, without progress; reset whenever bytes arrive
    url_refreshes: int = 3  # fresh result URLs asked for per output when one has expired

    def delay(self, attempt: int, retry_after: Optional[float] = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap_s)
        exp = min(self.cap_s, self.base_s * (2 ** min(attempt, 30)))
        return random.uniform(exp / 2, exp)  # "equal jitter"


class Create(str, enum.Enum):
    RESEND = "resend"  # never left this machine
    WAIT = "wait"  # refused for now (rate limit, capacity): nothing created
    REFUSED = "refused"  # a definite answer: nothing created, do not send again
    AMBIGUOUS = "ambiguous"  # may have been created: look it up, never resend blindly


REFUSALS = (AuthError, QuotaError, RejectedInput, ConfigError, NotFound, NotSupported, RemoteFailure)


def create_outcome(err: BaseException) -> Create:
    """What one failed create attempt means (see the table above)."""
    if isinstance(err, NotSent):
        return Create.RESEND
    if isinstance(err, (RateLimited, CapacityBusy)):
        return Create.WAIT
    if isinstance(err, REFUSALS):
        return Create.REFUSED
    return Create.AMBIGUOUS


def look_is_fatal(err: BaseException) -> bool:
    """A look at a task (poll, outputs, find, upload, cancel) that retrying cannot fix."""
    return isinstance(err, (ConfigError, RejectedInput, NotSupported, QuotaError))


def status_error(resp: "Response", what: str, *, provider: str = "", profile: str = "",
                 auth_hint: str = "") -> RemoteError:
    """The error an HTTP status means when the body said nothing the provider recognised."""
    status = resp.status
    kw = dict(provider=provider, profile=profile, code=status)
    where = f"{what}: HTTP {status}"
    if status in (401, 403):
        return AuthError(where, hint=auth_hint or "check the profile's key", **kw)
    if status in (404, 405, 410):
        return NotFound(where, hint="check the profile's url", **kw)
    if status in (408, 429):
        return RateLimited(f"{where} (busy or rate-limited)", retry_after=resp.retry_after, **kw)
    if status == 413:
        return RejectedInput(f"{where}: the request is too large", hint="use smaller inputs", **kw)
    if status >= 500:
        snippet = scrub(resp.text[:80]).replace("\n", " ").strip()
        more = f" ({snippet!r})" if snippet and not snippet.startswith("{") else ""
        return ServerError(f"{where}{more}", retry_after=resp.retry_after,
                           hint="the service or a gateway in front of it is failing", **kw)
    if 400 <= status < 500:
        return RejectedInput(f"{where}", **kw)
    return ProtocolError(f"{what}: unexpected HTTP {status} at {strip_query(resp.url)}", **kw)
