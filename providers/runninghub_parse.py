"""Reading RunningHub's answers and the ``workflow`` widget: pure functions, no requests.

- :func:`parse_workflow`: a workflow id, ``app:<webappId>`` or an API-format graph.
- :func:`check_target` / :func:`check_app_targets`: targets against the workflow's graph (from
  ``getJsonApiFormat``) or the AI App's published fields (``apiCallDemo``), before anything is paid.
- :func:`succeeded`: the ``0 + list`` outputs answer → a SUCCEEDED update with its outputs and cost.
- :func:`failure`: ``failedReason`` of an 805 answer → RemoteFailure naming the remote node.
- :func:`validation_error`: a 433 answer's ``promptTips.node_errors`` → RejectedInput naming nodes.

Numbers arrive as strings or numbers (facts §2); every reader accepts both, and anything else in
an answer is ignored rather than trusted.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlsplit

from .base import (ConfigError, Output, Override, RejectedInput, RemoteFailure, State, TaskUpdate, Target,
                   parse_api_graph)
from .kinds import extension, kind_of, mime_of
from .local_file import not_uploaded, size_of

MAX_TEXT = 300
MAX_UPLOAD = 30 * 1024 * 1024  # per file [§3.9, code 809]
# what the resource upload takes, by kind [§3.9 "Accepted types"]: a ZIP is the one archive (LoadImages(zip))
ACCEPTS = {"image": ("png", "jpg", "jpeg", "webp"), "video": ("mp4", "avi", "mov", "mkv"),
           "audio": ("mp3", "wav", "flac"), "file": ("zip",)}
ID_RE = re.compile(r"^\d{1,25}$")
URL_ID_RE = re.compile(r"runninghub\.(?:cn|ai)/(?:post|workflow)/(\d{6,25})")


def short(text: Any, n: int = MAX_TEXT) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def number(value: Any) -> Optional[float]:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out and abs(out) < 1e15 else None


def as_int(value: Any) -> Optional[int]:
    """An answer code as an int (codes come as 804 or "1501")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def as_bool(value: Any) -> Optional[bool]:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def json_value(value: Any) -> Any:
    """A field the service sends either as JSON or as a JSON string (promptTips, failedReason)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


# ---------------------------------------------------------------- the workflow widget

@dataclass
class Workflow:
    kind: str  # workflow | app | graph
    id: str  # workflow id, webapp id, or the base workflow id for a graph
    graph: Optional[dict] = None


def parse_workflow(p: Any, text: str) -> Workflow:
    raw = (text or "").strip()
    if not raw:
        raise p.error(RejectedInput, "the workflow is empty", field="workflow",
                      hint="give a workflow id, app:<webappId> or an API-format graph (JSON)")
    if raw.startswith("{"):
        graph = parse_api_graph(raw, provider=p.id, profile=p.name)
        base = str(p.profile.get("base_workflow_id") or "").strip()
        if not ID_RE.match(base):
            what = f"base_workflow_id {base!r} is not a workflow id" if base else \
                "running your own graph needs a base workflow id"
            raise p.error(ConfigError, what, field="base_workflow_id",
                          hint="set RUNNINGHUB_BASE_WORKFLOW_ID (or base_workflow_id in this profile's table of "
                               "profiles.toml) to the digits of any workflow of yours that has run once on RunningHub")
        return Workflow("graph", base, graph)
    if raw.lower().startswith("app:"):
        wid = raw[4:].strip()
        if not ID_RE.match(wid):
            raise p.error(RejectedInput, f"{raw!r} is not app:<webappId>", field="workflow",
                          hint="the webappId is the number in the AI App's address, e.g. app:1937084629516193794")
        return Workflow("app", wid)
    if ID_RE.match(raw):
        return Workflow("workflow", raw)
    m = URL_ID_RE.search(raw)
    if m:
        return Workflow("workflow", m.group(1))
    raise p.error(RejectedInput, f"workflow {short(raw, 60)!r} is not a RunningHub workflow id", field="workflow",
                  hint="give the digits of a workflow id (…/post/<id>), app:<webappId>, or an API-format graph")


def classes(graph: dict) -> dict[str, str]:
    return {str(k): str(v.get("class_type", "")) for k, v in graph.items() if isinstance(v, dict)}


def check_target(p: Any, tgt: Target, graph: dict) -> None:
    node = graph.get(tgt.node)
    if not isinstance(node, dict):
        ids = ", ".join(sorted(graph, key=lambda s: (len(s), s))[:30])
        raise p.error(RejectedInput, f"target {tgt.raw}: the workflow has no node {tgt.node!r}", field="target",
                      hint=f"node ids in this workflow: {ids}")
    inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
    if tgt.field not in inputs:
        names = ", ".join(sorted(inputs)) or "none"
        raise p.error(RejectedInput, f"target {tgt.raw}: node {tgt.node} ({node.get('class_type')}) has no input "
                      f"{tgt.field!r}", field="target", hint=f"its inputs are: {names}")
    value = inputs[tgt.field]
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        raise p.error(RejectedInput, f"target {tgt.raw}: that input is linked to node {value[0]}, so RunningHub "
                      "cannot override it", field="target",
                      hint="override a widget value instead (or run your own graph as JSON)")


def check_app_targets(p: Any, info: dict, targets: list) -> None:
    fields = [f for f in info.get("nodeInfoList") or [] if isinstance(f, dict)]
    have = {(str(f.get("nodeId")), str(f.get("fieldName"))) for f in fields}
    listed = ", ".join(f"{f.get('nodeId')}.{f.get('fieldName')}" for f in fields[:20])
    for tgt, _ in targets:
        if not fields:
            raise p.error(RejectedInput, f"target {tgt.raw}: the AI App lists no editable fields", field="target",
                          hint="run the app once on the RunningHub website; it then publishes its fields")
        if (tgt.node, tgt.field) not in have:
            raise p.error(RejectedInput, f"target {tgt.raw} is not an editable field of this AI App", field="target",
                          hint=f"its fields are: {listed}")


# ---------------------------------------------------------------- file inputs

def check_file(p: Any, tgt: Target, o: Override) -> None:
    """A file input RunningHub's upload would refuse (type or size), refused before anything is paid."""
    if not not_uploaded(o.value):
        return
    ext = "png" if o.kind == "image" and not o.name else extension(o.name) or next(
        (e for e in ACCEPTS.get(o.kind, ()) if o.mime and mime_of("x." + e) == o.mime), "")
    takes = ACCEPTS.get(o.kind, ())
    if ext not in takes:
        raise p.error(RejectedInput, f"{o.kind} for {tgt.raw} is a {'.' + ext if ext else 'untyped'} file; RunningHub "
                      f"takes {o.kind} files of type {', '.join('.' + e for e in takes)}", field=o.kind,
                      hint="convert it to one of those types, or pass a public URL with RemoteInputText")
    if size_of(o.value) > MAX_UPLOAD:
        raise p.error(RejectedInput, f"{o.kind} for {tgt.raw} is {size_of(o.value) / 2**20:.1f} MB; RunningHub accepts "
                      "at most 30 MB per file", field=o.kind,
                      hint="make it smaller, or pass a public URL with RemoteInputText")


# ---------------------------------------------------------------- outputs

def outputs_from(items: list) -> tuple[list[Output], Optional[float], Optional[float]]:
    """(outputs, coins, seconds) of a success list (legacy ``fileUrl``/``fileType`` or v2 ``url``/
    ``outputType``/``text`` items): the kind from the file type (providers.kinds: ``txt`` is text, a
    gif a video, ``glb``/``latent`` files); a URL listed twice is one output."""
    outs: list[Output] = []
    seen: set = set()
    coins: Optional[float] = None
    secs: Optional[float] = None
    for item in items:
        if not isinstance(item, dict):
            continue
        c, s = number(item.get("consumeCoins")), number(item.get("taskCostTime"))
        coins = c if c is not None and (coins is None or c > coins) else coins  # per task, repeated (INFERRED)
        secs = s if s is not None and (secs is None or s > secs) else secs
        node = str(item["nodeId"]) if isinstance(item.get("nodeId"), (str, int)) else None
        url = item.get("fileUrl") or item.get("url")
        if not isinstance(url, str) or not url:
            if isinstance(item.get("text"), str) and item["text"]:
                outs.append(Output(kind="text", text=item["text"], node=node))
            continue
        if url in seen:
            continue
        seen.add(url)
        filename = urlsplit(url).path.rsplit("/", 1)[-1] or None
        ftype = str(item.get("fileType") or item.get("outputType") or extension(filename)).lower().lstrip(".")
        kind = kind_of(f"x.{ftype}") if ftype else kind_of(filename)
        outs.append(Output(kind=kind, url=url, filename=filename, node=node, mime=mime_of(f"x.{ftype}", kind)))
    return outs, coins, secs


def succeeded(items: list, raw: str) -> TaskUpdate:
    outs, coins, secs = outputs_from(items)
    bits = [f"{len(outs)} output(s)" if outs else "finished but saved no files (only save nodes produce outputs)"]
    if secs is not None:
        bits.append(f"{secs:g} s")
    if coins is not None:
        bits.append(f"{coins:g} coins")
    return TaskUpdate(State.SUCCEEDED, progress=1.0, cost=coins, outputs=outs, raw_state=raw, message=", ".join(bits))


# ---------------------------------------------------------------- failures

def reason_of(data: Any) -> dict:
    reason = json_value(data.get("failedReason")) if isinstance(data, dict) else None
    if isinstance(data, dict) and isinstance(data.get("failedReason"), str) and reason is None:
        reason = {"exception_message": data["failedReason"]}
    return reason if isinstance(reason, dict) else {}


def interrupted(reason: dict) -> bool:
    return "interrupt" in str(reason.get("exception_type") or "").lower()


def failure(p: Any, reason: dict) -> RemoteFailure:
    node_id = str(reason.get("node_id") or "")
    node_cls = str(reason.get("node_name") or "")
    etype = str(reason.get("exception_type") or "")
    message = str(reason.get("exception_message") or "")
    if not (node_id or message):
        return p.error(RemoteFailure, "the task failed without a reason (it may have been cancelled on the "
                       "RunningHub website)", code=805, hint="open the task on RunningHub for details")
    what = f"{etype}: {message}" if etype else message
    hint = ('try instance_type = "plus" (48 GB) or smaller sizes' if "out of memory" in message.lower()
            else "fix that node's inputs or models on RunningHub, then re-queue")
    return p.error(RemoteFailure, f"the remote run failed: {short(what)}", code=805, remote_node=node_id,
                   node_class=node_cls, hint=hint)


def validation_error(p: Any, code: Any, msg: str, data: Any) -> RejectedInput:
    tips = json_value(data.get("promptTips")) if isinstance(data, dict) else None
    lines, first, first_cls = [], "", ""
    if isinstance(tips, dict):
        errors = tips.get("node_errors") if isinstance(tips.get("node_errors"), dict) else {}
        for nid, err in list(errors.items())[:5]:
            err = err if isinstance(err, dict) else {}
            cls = str(err.get("class_type") or "")
            for e in [x for x in err.get("errors") or [] if isinstance(x, dict)][:1]:
                lines.append(f"{cls}#{nid}: {short(e.get('message', ''), 80)} ({short(e.get('details', ''), 120)})")
            first, first_cls = first or str(nid), first_cls or cls
        if not lines and isinstance(tips.get("error"), dict):
            lines.append(short(tips["error"].get("message", ""), 160))
    detail = f"the workflow failed RunningHub's validation ({code} {short(msg, 60)})"
    if lines:
        detail += ": " + "; ".join(lines)
    return p.error(RejectedInput, detail, code=code, field="workflow", remote_node=first, node_class=first_cls,
                   hint="fix the named node's value (a missing model or file) or the input you override")
