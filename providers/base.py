"""The Provider protocol, its shared types and the one error hierarchy.

Every provider module (``providers/<id>.py``) translates its service's wire format into these
types and nothing else: no journal, no progress bars, no ComfyUI imports. The engine
(``engine/tasks.py``) drives a provider through :class:`Provider` and owns retries of whole
steps, the journal, downloads and events.

Lifecycle of one task, as the engine runs it::

    key = provider.new_submission_key()          # journalled before any network step
    pre = await provider.validate(spec)          # pre-flight, nothing paid yet
    value = await provider.upload(data, mime, name)   # per IMAGE override
    ref = await provider.submit(spec, key)       # -> RemoteRef (remote id + resume data)
    async for update in provider.watch(ref): ... # TaskUpdate stream ending in a terminal state
    outputs = await provider.outputs(ref)        # when the terminal update carried none
    await provider.cancel(ref)                   # on interrupt, where capabilities.cancel

``RemoteRef.data`` is JSON stored in the journal and handed back after a restart, so that
``watch``/``outputs``/``cancel`` work on a task submitted by an earlier process.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Mapping, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.transfer import Http


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


@dataclass(frozen=True)
class Override:
    """One input override, in chain order. ``kind`` is text|int|float|image.

    For images ``value`` is the PNG bytes until the engine uploads them, then the provider's
    upload value (a file name, resource id or URL); ``sha256`` stays the content hash.
    """

    target: str
    kind: str
    value: Any
    sha256: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None

    def with_value(self, value: Any) -> "Override":
        return dataclasses.replace(self, value=value)


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


# --------------------------------------------------------------------------- errors

class RemoteError(Exception):
    """Base of every error the extension raises. Messages name provider, profile, node and
    field where known, and say what to do. Never put a secret or a traceback in one: the engine
    still scrubs every message through the redaction point before it leaves the extension."""

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
        super().__init__(detail)

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
        return f"{head}{who}{what}{tail}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": str(self), "code": self.code,
                "field": self.field or None, "remote_node": self.remote_node or None}


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
    """Unknown workflow, app, template or task id."""

    kind = "not_found"


class RemoteFailure(RemoteError):
    """The remote run failed; ``remote_node``/``node_class`` say where."""

    kind = "remote_failure"


class TransientError(RemoteError):
    """Worth retrying (5xx, 429, dropped connection); ``retry_after`` in seconds when known."""

    retryable = True
    kind = "transient"


class CapacityBusy(TransientError):
    """The account's concurrent-task limit is reached; nothing was created. The engine waits in a
    local queue with backoff and says so in the task's message instead of failing."""

    kind = "capacity"


class AmbiguousSubmit(TransientError):
    """The submit request may or may not have reached the service (connection dropped after
    sending, 5xx on a non-idempotent create). Never resend blindly: the engine asks
    ``find(key)`` or, where the provider cannot tell, stops and tells the user."""

    kind = "ambiguous_submit"


class ProtocolError(RemoteError):
    """The service answered something we cannot read (malformed JSON, missing fields)."""

    kind = "protocol"


class NotSupported(RemoteError):
    kind = "not_supported"


class RemoteTimeout(RemoteError):
    kind = "timeout"


class Interrupted(RemoteError):
    """The local prompt was interrupted while waiting."""

    kind = "interrupted"


# --------------------------------------------------------------------------- protocol

class Provider:
    """Base class of every provider. One instance per profile, living on the engine's loop.

    Subclasses set ``id`` and ``capabilities`` and implement the coroutines below. ``http`` is the
    engine's HTTP client (retries, timeouts, size caps, redaction); ``profile`` is the resolved
    :class:`engine.profiles.Profile`. Secrets are read with ``profile.secret(name)``.
    """

    id: str = ""
    label: str = ""
    capabilities = Capabilities()

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
        """Upload one input file; return the value to put in the target field."""
        raise self.error(NotSupported, "this provider cannot upload images",
                         field="image", hint="pass a URL or file name with RemoteInputText")

    async def submit(self, spec: SubmitSpec, key: str) -> RemoteRef:
        raise NotImplementedError

    async def find(self, key: str, spec: SubmitSpec) -> Optional[RemoteRef]:
        """After an AmbiguousSubmit: the task created under ``key``, or None if none was made.
        Raise NotSupported where the service gives no way to tell."""
        raise self.error(NotSupported, "cannot tell whether the submit reached the service")

    def watch(self, ref: RemoteRef) -> AsyncIterator[TaskUpdate]:
        """Async iterator of updates ending with a terminal one (SUCCEEDED/FAILED/CANCELLED).
        Push channel where the service has one, HTTP polling as safety net."""
        raise NotImplementedError

    async def outputs(self, ref: RemoteRef) -> list[Output]:
        raise NotImplementedError

    async def cancel(self, ref: RemoteRef) -> None:
        raise self.error(NotSupported, "this service has no cancel; the remote task may still run and bill")

    def download_headers(self, output: Output) -> dict:
        """Headers to fetch an output URL (e.g. a bearer token); never stored in the journal."""
        return {}

    async def check(self) -> str:
        """Cheap authenticated call for the panel's "Test connection"; returns a short message."""
        raise self.error(NotSupported, "connection test not implemented for this provider")

    async def close(self) -> None:
        """Release provider-held resources (sockets, background tasks)."""


# --------------------------------------------------------------------------- helpers

def looks_like_ui_workflow(data: Any) -> bool:
    return isinstance(data, dict) and "nodes" in data and "links" in data


def parse_api_graph(text: str, *, provider: str = "", profile: str = "") -> dict:
    """Parse an API-format graph from JSON text, with clear errors for UI-format exports."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise RejectedInput(f"workflow is not valid JSON ({e.__class__.__name__}: {e})", field="workflow",
                            provider=provider, profile=profile,
                            hint="paste an API-format graph (ComfyUI: Workflow → Export (API))") from None
    if looks_like_ui_workflow(data):
        raise RejectedInput("workflow is in UI format (it has 'nodes' and 'links')", field="workflow",
                            provider=provider, profile=profile,
                            hint="export it with Workflow → Export (API) in ComfyUI and use that file")
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict):
        data = data["prompt"]  # a /prompt request body
    if not isinstance(data, dict) or not data or not all(
            isinstance(v, dict) and "class_type" in v for v in data.values()):
        raise RejectedInput("workflow is not an API-format graph (expected {node_id: {class_type, inputs}})",
                            field="workflow", provider=provider, profile=profile,
                            hint="export it with Workflow → Export (API) in ComfyUI")
    return data


def apply_overrides(graph: dict, spec: SubmitSpec, *, provider: str = "", profile: str = "",
                    check_fields: bool = True) -> dict:
    """Return a copy of an API graph with every NODE_ID.FIELD override applied (last wins).
    A target whose node is missing is an error naming the target and listing the node ids."""
    out = json.loads(json.dumps(graph))
    for tgt, o in spec.targets("node"):
        node = out.get(tgt.node)
        if node is None:
            ids = ", ".join(sorted(out, key=_node_sort_key)[:30])
            raise RejectedInput(f"target {tgt.raw}: the workflow has no node {tgt.node!r}", field="target",
                                provider=provider, profile=profile, hint=f"node ids in this workflow: {ids}")
        inputs = node.setdefault("inputs", {})
        if check_fields and tgt.field not in inputs:
            names = ", ".join(sorted(k for k in inputs)) or "none"
            raise RejectedInput(f"target {tgt.raw}: node {tgt.node} ({node.get('class_type')}) has no input "
                                f"{tgt.field!r}", field="target", provider=provider, profile=profile,
                                hint=f"its inputs are: {names}")
        inputs[tgt.field] = o.value
    return out


def _node_sort_key(node_id: str) -> tuple:
    parts = re.split(r"[:]", node_id)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def last_wins(overrides: Sequence[Override]) -> tuple[Override, ...]:
    """Keep chain order but let a later override of the same target win."""
    seen: dict[str, Override] = {}
    for o in overrides:
        seen.pop(o.target.strip(), None)
        seen[o.target.strip()] = o
    return tuple(seen.values())
