"""What each provider gives the shared contract suite (``tests/contract/test_contract.py``).

One module per provider, ``tests/contract/case_<provider>.py``, defines ``CASE`` — a subclass of
:class:`ContractCase` that starts that provider's fake and says how to address it: its workflows,
and ``ROUTES``, the fake's route names for each kind of call. The fault classes of design §6 are
played generically from ``ROUTES`` by :meth:`ContractCase.inject` (the toolkit's switchable
faults); only what is specific to a service (an expiring URL, a failing node, a content-safety
refusal) is the case's own code. A fault class a fake cannot play is a gap in the fake.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..fakes.toolkit import Clock, FakeServer

# the policy the suite runs the engine with; faults are sized from it
REQUEST_TIMEOUT_S = 2.0
IDLE_TIMEOUT_S = 2.0
LANDING_S = 6.0

# every fault class the suite plays, for every provider (design §6)
FAULT_CLASSES = (
    "submit_5xx",  # the create is answered 503 before anything happens
    "submit_429",  # the create is refused with 429 + Retry-After
    "submit_drop_after",  # the create happens, the connection drops before the answer
    "submit_error_after",  # the create happens, a gateway answers 524 with an HTML page
    "submit_late",  # the create happens only after the client gave up waiting
    "poll_5xx",  # a burst of 502 on status looks
    "poll_auth",  # a proxy answers status looks with 401, 403, 404
    "poll_malformed",  # one status answer is not JSON
    "compressed",  # every answer gzip-compressed (Content-Encoding + Content-Length)
    "ws_drop",  # the push channel drops mid-run (providers with one)
    "download_truncated",  # a result file is cut off once
    "download_expired",  # the first result URLs have expired; fresh ones work
    "download_slow",  # a result file streams steadily for longer than any request timeout
    "slow_answers",  # answers take 1.5 s
)


@dataclass
class Expect:
    """What the fake will produce for a workflow: list of (width, height, rgb) per image."""

    images: list


class ContractCase:
    provider: str = ""
    has_auth = True
    # the fake's route names per kind of call; "ws" only where the service has a push channel
    ROUTES: dict[str, str] = {}
    # fault classes this case cannot play (a real server, not a fake) and why; fakes leave it empty
    unplayable: frozenset = frozenset()
    unplayable_why = ""

    def __init__(self) -> None:
        self.fake: Optional[FakeServer] = None
        self.clock = Clock(speed=1.0)

    async def start(self) -> None:
        """Start the fake(s) on 127.0.0.1; set ``self.fake``."""
        raise NotImplementedError

    async def stop(self) -> None:
        if self.fake is not None:
            await self.fake.stop()

    def profile(self, key: str) -> dict:
        """A ``[profiles.NAME]`` table (as a dict) pointing at the fake, with ``key`` as the secret.
        The suite passes a canary key (the fake must accept it) and, for the auth scenario, a key
        starting with ``WRONG-`` (the fake must refuse it exactly as the service would). Include
        ``poll_interval_s`` small (e.g. 0.05) so tests run fast."""
        raise NotImplementedError

    # ---- workflows (the ``workflow`` widget text) and what they produce
    def workflow_single(self) -> tuple[str, list[tuple[str, str, object]], Expect]:
        """A workflow giving one image, with overrides [(kind, target, value)] that it honours; and
        the expected image. It should queue, then run with progress, for about a second."""
        raise NotImplementedError

    def workflow_multi(self) -> tuple[str, list, Expect]:
        raise NotImplementedError

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        """(workflow, image target) whose single output is the uploaded image, pixel for pixel."""
        return None

    def workflow_slow(self) -> tuple[str, list]:
        """A workflow that runs long enough (several seconds) to be cancelled mid-run."""
        raise NotImplementedError

    def bad_target(self) -> tuple[str, list]:
        raise NotImplementedError

    # ---- observing the fake
    def remote_tasks(self) -> int:
        """How many tasks the fake created (each one would be paid)."""
        raise NotImplementedError

    def was_cancelled(self, remote_id: str) -> bool:
        raise NotImplementedError

    def finished_remotely(self, remote_id: str) -> bool:
        """The fake's task has ended (its results exist on the service)."""
        raise NotImplementedError

    # ---- service-specific faults
    def expire_urls(self) -> None:
        """Called before the task is submitted: the result URLs of the next answer that carries
        results (and any handed out before) have already expired — they answer 403 the way the
        service says "expired"; the answers after that carry fresh URLs that work."""
        raise NotImplementedError

    def fail_node(self) -> None:
        """The next task fails in a named remote node."""
        raise NotImplementedError

    def refuse_content(self) -> None:
        """The next task is refused by the service's content-safety filter (where it has one)."""
        raise NotImplementedError

    # ---- the generic fault player
    def server_for(self, route: str) -> FakeServer:
        """The fake that serves ``route`` (a provider may have a separate file server)."""
        assert self.fake is not None
        return self.fake

    def cannot_play(self, fault: str) -> Optional[str]:
        """Why this case cannot play ``fault``, or None."""
        if fault in self.unplayable:
            return self.unplayable_why or f"{self.provider} case cannot play {fault}"
        if fault == "ws_drop" and "ws" not in self.ROUTES:
            return f"{self.provider} has no push channel"
        return None

    def add(self, kind: str, fault: str, **kw: Any) -> Any:
        route = self.ROUTES[kind]
        return self.server_for(route).faults.add(route, fault, **kw)

    def inject(self, fault: str) -> None:
        if fault == "submit_5xx":
            self.add("create", "status", status=503)
        elif fault == "submit_429":
            self.add("create", "status", status=429, retry_after=1)
        elif fault == "submit_drop_after":
            self.add("create", "drop_after")
        elif fault == "submit_error_after":
            self.add("create", "status_after", status=524)
        elif fault == "submit_late":
            self.add("create", "late", delay=REQUEST_TIMEOUT_S + 1.0)
        elif fault == "poll_5xx":
            self.add("poll", "status", status=502, times=3)
        elif fault == "poll_auth":
            for status in (401, 403, 404):
                self.add("poll", "status", status=status, body={"error": "proxy says no"})
        elif fault == "poll_malformed":
            self.add("poll", "malformed")
        elif fault == "compressed":
            for kind in ("create", "poll", "outputs", "upload", "file"):
                if kind in self.ROUTES:
                    self.add(kind, "gzip", times=-1)
        elif fault == "ws_drop":
            self.add("ws", "ws_drop", after=3)
        elif fault == "download_truncated":
            self.add("file", "truncate")
        elif fault == "download_expired":
            self.expire_urls()
        elif fault == "download_slow":
            self.add("file", "trickle", delay=2.5 * IDLE_TIMEOUT_S)
        elif fault == "slow_answers":
            self.add("create", "slow", delay=1.5)
            self.add("poll", "slow", delay=1.5, times=2)
        elif fault == "node_error":
            self.fail_node()
        elif fault == "content_safety":
            self.refuse_content()
        else:
            raise KeyError(fault)
