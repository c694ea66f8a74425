"""What each provider gives the shared contract suite (``tests/contract/test_contract.py``).

One module per provider, ``tests/contract/case_<provider>.py``, defines ``CASE`` — a subclass of
:class:`ContractCase` that starts that provider's fake and says how to address it. The suite
runs the same scenarios through the engine's TaskManager for every case, skipping only what the
provider's ``capabilities`` (or ``scenarios`` below) say it lacks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..fakes.toolkit import Clock, FakeServer


@dataclass
class Expect:
    """What the fake will produce for a workflow: list of (width, height, rgb) per image."""

    images: list


class ContractCase:
    provider: str = ""
    # scenario names this provider's fake can play (see ``inject``); others are skipped
    faults: frozenset = frozenset()

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
        """A workflow giving one image, with overrides [(kind, target, value)] (kind text/int/float)
        that it honours; and the expected image. It should queue, then run with progress."""
        raise NotImplementedError

    def workflow_multi(self) -> tuple[str, list, Expect]:
        """A workflow giving at least two image outputs."""
        raise NotImplementedError

    def workflow_upload(self) -> Optional[tuple[str, str]]:
        """(workflow, image target) whose single output is the uploaded image, pixel for pixel;
        None when the provider has no uploads."""
        return None

    def workflow_slow(self) -> tuple[str, list]:
        """A workflow that runs long enough (several seconds) to be cancelled mid-run."""
        raise NotImplementedError

    def bad_target(self) -> tuple[str, list]:
        """(workflow, overrides) with a target the provider must reject, naming it, before paying."""
        raise NotImplementedError

    # ---- observing the fake
    def remote_tasks(self) -> int:
        """How many tasks the fake created (each one would be paid)."""
        raise NotImplementedError

    def was_cancelled(self, remote_id: str) -> bool:
        raise NotImplementedError

    def inject(self, fault: str) -> None:
        """Schedule one fault for the next task. Names (only those in ``faults`` are asked):
        ``submit_5xx`` (create answers 503 before doing anything), ``submit_429`` (429 with
        Retry-After 1), ``submit_drop_after`` (create runs, the answer is lost), ``poll_5xx`` (a burst
        of 502 on status polls), ``poll_malformed`` (one status answer is not JSON), ``ws_drop``
        (the push channel drops mid-run), ``download_truncated`` (a result file is cut in half once),
        ``download_expired`` (the result URL answers 403/404 for good), ``node_error`` (the remote
        run fails in a named node), ``content_safety`` (the service refuses the input as unsafe),
        ``slow_answers`` (answers take 1.5 s)."""
        raise NotImplementedError
