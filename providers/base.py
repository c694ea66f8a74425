"""The Provider protocol and its shared types.

A provider module (``providers/<id>.py``) *describes* its service: endpoints, the tables that map
the service's states and error codes to these types, and a few small coroutines that each make one
request. It decides nothing about retries, deadlines or when a task has ended: the engine does, once,
for every provider (design §4 "the rules of every paid step", ``engine/rules.py``).

One task, as the engine drives it::

    key = provider.new_submission_key()           # journalled before any network step
    pre = await provider.validate(spec)           # pre-flight, nothing paid yet
    value = await provider.upload(data, mime, name)   # per file input (cached while upload_ttl_s)
    ref = await provider.submit(spec, key)        # ONE create attempt -> RemoteRef
    ref = await provider.find(key, spec)          # after an ambiguous create: look it up (or NotSupported)
    upd = await provider.poll(ref)                # ONE look at the task -> TaskUpdate (terminal = the service said so)
    hints = provider.push(ref)                    # optional live updates (WebSocket); never end a task
    outputs = await provider.outputs(ref)         # fresh result URLs (they expire)
    result = await provider.cancel(ref)           # ONE cancel request -> CancelResult

``RemoteRef.data`` is JSON stored in the journal and handed back after a restart, so that every
call works on a task submitted by an earlier process. ``data["cancel_requested"]`` is set by the
engine once a cancel was asked for, so that ``poll`` of a provider that can cancel reports the task
the service then stopped as CANCELLED.
"""
from __future__ import annotations

import dataclasses
import enum
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Optional, Sequence

from .errors import (AmbiguousSubmit, AnswerLost, AuthError, CapacityBusy, ConfigError, ContentRejected,  # noqa: F401
                     Interrupted, NotFound, NotSent, NotSupported, ProtocolError, QuotaError, RateLimited,
                     RejectedInput, RemoteError, RemoteFailure, RemoteTimeout, ServerError, TaskGone,
                     TransientError)
from .graph import apply_overrides, looks_like_ui_workflow, node_sort_key, parse_api_graph  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.transfer import Http, Response

_node_sort_key = node_sort_key  # older name


# --------------------------------------------------------------------------- states

class State(str, enum.Enum):
    SUBMITTING = "submitting"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABANDONED = "abandoned"

    def __str__(self) -> str:  # so f-strings show "queued", not "State.QUEUED"
        return self.value

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def active(self) -> bool:
        return self in ACTIVE_STATES


TERMINAL_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.CANCELLED})
ACTIVE_STATES = frozenset({State.SUBMITTING, State.QUEUED, State.RUNNING})
# ABANDONED is neither: the remote task may still run; the journal keeps following it.


class CancelResult(str, enum.Enum):
    """What one cancel request achieved. Never an outcome: the engine keeps watching until the
    service reports the task's end (cancelled — or finished, and then the result is kept)."""

    REQUESTED = "requested"  # the service took the request
    TOO_LATE = "too_late"  # the task had already ended; nothing to stop
    UNSUPPORTED = "unsupported"  # the service cannot cancel this task


@dataclass(frozen=True)
class Capabilities:
    """What a provider can do; the contract suite skips scenarios a provider lacks."""

    cancel: bool = False
    queue_position: bool = False
    progress: str = "poll"  # "push" (WebSocket/stream), "poll" (HTTP only) or "none"
    uploads: bool = True
    cost: bool = False
    idempotent_submit: bool = False  # a resubmit with the same key never creates a second task
    client_chosen_id: bool = False  # the submission key *is* the remote id (known before submit)
    findable: bool = False  # find(key) can tell whether an ambiguous submit created a task
    addressing: str = "node"  # "node" (targets are NODE_ID.FIELD) or "field" (plain names)
    # the file kinds ``upload`` takes (design §2: image, video, audio, file); an input of another
    # kind is refused by the engine before anything is paid, naming the node and what the service takes
    input_kinds: tuple[str, ...] = ("image",)
    # what validate() knows of a graph's node types before anything is paid: "listed" (every
    # missing type, from the remote's node list), "service" (the service's own graph check, which
    # does not name them) or "none" (no such call: the service refuses an unknown type at submit)
    node_types: str = "none"

    @property
    def can_find(self) -> bool:
        return self.findable or self.idempotent_submit or self.client_chosen_id

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Target:
    """Where an override goes: ``6.text`` → node "6", field "text"; ``prompt`` → field only."""

    raw: str
    node: Optional[str]
    field: str

    def __str__(self) -> str:
        return self.raw


_FIELD_RE = re.compile(r"^[A-Za-z_][\w\-]*$")


def parse_target(raw: str, addressing: str) -> Target:
    """Parse a ``target`` widget for a provider addressed by ``node`` or by ``field``.

    Node ids may contain ``:`` (subgraph nodes); the last ``.`` splits node from field.
    Raises :class:`RejectedInput` naming the field ``target`` on bad syntax.
    """
    text = (raw or "").strip()
    if not text:
        raise RejectedInput(field="target", detail="the target is empty",
                            hint="give NODE_ID.FIELD (e.g. 6.text) or a published field name")
    if addressing == "node":
        node, dot, fld = text.rpartition(".")
        if not dot or not node or not fld:
            raise RejectedInput(field="target", detail=f"target {text!r} is not NODE_ID.FIELD",
                                hint="write the remote node id and input name, e.g. 6.text or 12:5.image")
        if not re.fullmatch(r"[\w:\-]+", node) or not _FIELD_RE.match(fld):
            raise RejectedInput(field="target", detail=f"target {text!r} has an invalid node id or field name",
                                hint="node ids are digits (subgraph ids like 12:5), fields are input names")
        return Target(text, node, fld)
    if not _FIELD_RE.match(text):
        raise RejectedInput(field="target", detail=f"target {text!r} is not a field name",
                            hint="this provider takes the published field name, e.g. prompt")
    return Target(text, None, text)


FILE_KINDS = ("image", "video", "audio", "file")


@dataclass(frozen=True)
class Override:
    """One input override, in chain order. ``kind`` is text|int|float|boolean or a file kind
    (``FILE_KINDS``: image|video|audio|file); :func:`field_text` is a value as a service's text field.

    For files ``value`` is the file's bytes (or, for a file of ComfyUI's folders, a
    ``local_file.LocalFile`` that stays on disk) until the engine uploads them, then the provider's
    upload value (a file name, resource id or URL); ``sha256`` stays the content hash, ``name``
    the file's own name (``clip.mp4``; images: none, they go up as ``<sha256>.png``) and ``mime``
    its type.
    """

    target: str
    kind: str
    value: Any
    sha256: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    name: Optional[str] = None
    mime: Optional[str] = None

    @property
    def is_file(self) -> bool:
        return self.kind in FILE_KINDS

    def with_value(self, value: Any) -> "Override":
        return dataclasses.replace(self, value=value)

    def __repr__(self) -> str:  # compact: never megabytes of file bytes in an error report or a log
        value = self.value
        if isinstance(value, (bytes, bytearray)):
            size = f"{self.width}x{self.height} " if self.width and self.height else ""
            shown = f"<{size}{self.kind} file, {len(value)} bytes, sha256 {(self.sha256 or '?')[:12]}…>"
        else:
            text = repr(value)
            shown = text if len(text) <= 80 else text[:77] + "…"
        return f"Override({self.target!r}, {self.kind}, {shown})"


def field_text(o: "Override") -> str:
    """A scalar override as the text a service's string-typed field takes: JSON's ``true``/``false``
    for a boolean (not Python's ``True``), ``2.0`` for a float, the integer's digits, text as is."""
    if o.kind == "boolean":
        return "true" if o.value else "false"
    if o.kind == "int":
        return str(int(o.value))
    if o.kind == "float":
        return repr(float(o.value))
    return "" if o.value is None else str(o.value)


@dataclass(frozen=True)
class SubmitSpec:
    """Everything a provider needs to submit: the ``workflow`` widget text (already resolved
    from a file name where that applies) and the overrides, last-wins already applied."""

    workflow: str
    overrides: tuple[Override, ...] = ()
    profile: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)

    def targets(self, addressing: str) -> list[tuple[Target, Override]]:
        return [(parse_target(o.target, addressing), o) for o in self.overrides]


@dataclass
class Preflight:
    """What validate() learned before anything was paid."""

    cost_estimate: Optional[float] = None
    cost_unit: Optional[str] = None  # "credits", "CNY", ...
    message: Optional[str] = None
    workflow_label: Optional[str] = None  # short name for the panel


@dataclass
class RemoteRef:
    remote_id: str
    data: dict = field(default_factory=dict)  # JSON-serialisable resume data (never a secret)
    console_url: Optional[str] = None


@dataclass
class Output:
    """One result file or value. ``node`` is the remote node id; ``field`` a named output field."""

    kind: str  # image | video | audio | text | file
    url: Optional[str] = None
    filename: Optional[str] = None
    node: Optional[str] = None
    field: Optional[str] = None
    mime: Optional[str] = None
    text: Optional[str] = None  # inline value for kind == "text"
    preview: Optional[bool] = None  # True: a temporary preview (ComfyUI ``temp``), fetched only when nothing else is

    def to_json(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Output":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class TaskUpdate:
    """One observation of the remote task. ``None`` fields mean "unchanged / unknown"."""

    state: State
    queue_position: Optional[int] = None  # 1 = next to run; None once running
    queue_length: Optional[int] = None
    progress: Optional[float] = None  # 0..1
    node: Optional[str] = None  # current remote node label ("KSampler #3")
    step: Optional[int] = None
    max_steps: Optional[int] = None
    eta_s: Optional[float] = None
    message: Optional[str] = None
    cost: Optional[float] = None
    raw_state: Optional[str] = None  # the service's own state name/code, for the panel
    error: Optional["RemoteError"] = None  # set on FAILED
    outputs: Optional[list[Output]] = None  # set on SUCCEEDED when the push carried them
    preview: Optional[tuple[str, bytes]] = None  # (mime, image bytes): the remote's latest preview



# --------------------------------------------------------------------------- protocol

class Provider:
    """Base class of every provider. One instance per profile, living on the engine's loop.

    ``http`` is the engine's HTTP client (timeouts, size caps, the transport's retry policy,
    redaction); ``profile`` the resolved :class:`engine.profiles.Profile`; secrets are read with
    ``profile.secret(name)``. ``upload_ttl_s`` is how long the service keeps an upload (the engine
    re-uploads after that; None = as long as the service has it); ``max_rps`` its request rate.
    """

    id: str = ""
    label: str = ""
    capabilities = Capabilities()
    upload_ttl_s: Optional[float] = None
    # upload() takes a LocalFile (providers/local_file.py) and streams it; else it gets the bytes
    streams_uploads = False
    # API requests per second the service allows this account (every task and call of the profile
    # shares it; result downloads do not count). Services that publish none get a considerate 10;
    # a profile's ``max_rps`` overrides it; None = no limit (your own server).
    max_rps: Optional[float] = 10.0

    def __init__(self, profile: Any, http: "Http"):
        self.profile = profile
        self.http = http

    # ---- helpers every provider uses
    @property
    def name(self) -> str:
        return getattr(self.profile, "name", self.id)

    def error(self, cls: type[RemoteError], detail: str, **kw: Any) -> RemoteError:
        """Build an error carrying this provider's and profile's names."""
        return cls(detail, provider=self.id, profile=self.name, **kw)

    def http_error(self, resp: "Response", what: str, *, auth_hint: str = "") -> RemoteError:
        """The error an HTTP status means when the service's own error body said nothing more:
        the one status table every provider falls back to."""
        from ..engine.rules import status_error

        return status_error(resp, what, provider=self.id, profile=self.name, auth_hint=auth_hint)

    def new_submission_key(self) -> str:
        """Idempotency key journalled before submit. Providers whose service lets the client
        choose the task id return that id here and set ``client_chosen_id``."""
        return uuid.uuid4().hex

    def poll_interval(self) -> float:
        return float(getattr(self.profile, "poll_interval_s", 1.0) or 1.0)

    # ---- the protocol
    async def validate(self, spec: SubmitSpec) -> Preflight:
        """Pre-flight: syntax of workflow and targets, and where the service allows it that the
        targets exist. Raise RejectedInput/NotFound/ConfigError; return what was learned."""
        for o in spec.overrides:
            parse_target(o.target, self.capabilities.addressing)
        return Preflight()

    async def upload(self, data: bytes, mime: str, name: str) -> Any:
        """Upload one input file; return the value to put in the target field. ``data`` is bytes, or
        a LocalFile where ``streams_uploads`` (send ``local_file.sendable(data)``, fresh per attempt)."""
        raise self.error(NotSupported, "this provider cannot upload images",
                         field="image", hint="pass a URL or file name with RemoteInputText")

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        """ONE create request (``http.request(..., creates=True)``). Raise what the answer says;
        never retry: the engine decides whether the create may be sent again."""
        raise NotImplementedError

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """The task created under ``key``, or None when the service says there is none (yet).
        Raise NotSupported where the service gives no way to tell."""
        raise self.error(NotSupported, "cannot tell whether the submit reached the service")

    async def poll(self, ref: RemoteRef) -> TaskUpdate:
        """ONE look at the task. A terminal state only when the service reported one (with
        ``outputs`` on success where the answer carries them); TaskGone when the service itself
        says it does not know the task; any other error means "status unavailable right now"."""
        raise NotImplementedError

    def push(self, ref: RemoteRef) -> Optional[AsyncIterator[TaskUpdate]]:
        """Live updates (a WebSocket), or None when there is none (yet). They show progress and
        make the engine poll at once on a terminal one; they never end a task themselves."""
        return None

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        """The finished task's outputs with fresh URLs (asked again when a URL has expired)."""
        upd = await self.poll(ref)
        if upd.state is State.SUCCEEDED and upd.outputs is not None:
            return upd.outputs
        raise self.error(TransientError, f"the task is {upd.state}; its outputs are not available")

    async def cancel(self, ref: RemoteRef) -> CancelResult:
        """ONE cancel request, where ``capabilities.cancel``."""
        return CancelResult.UNSUPPORTED

    def download_headers(self, output: Output) -> dict:
        """Headers to fetch an output URL on the profile's own host (e.g. a bearer token); never
        sent to another host, never stored in the journal."""
        return {}

    async def check(self) -> str:
        """Cheap authenticated call for the panel's "Test connection"; returns a short message."""
        raise self.error(NotSupported, "connection test not implemented for this provider")

    async def close(self) -> None:
        """Release provider-held resources (sockets, background tasks)."""


def last_wins(overrides: Sequence[Override]) -> tuple[Override, ...]:
    """Keep chain order but let a later override of the same target win."""
    seen: dict[str, Override] = {}
    for o in overrides:
        seen.pop(o.target.strip(), None)
        seen[o.target.strip()] = o
    return tuple(seen.values())
