"""What a newer ComfyUI's jobs API answers, computed from a prompt queue's state.

ComfyUI v0.6+ serves ``GET /api/jobs`` and ``GET /api/jobs/{id}``; v0.26+ also ``POST
/api/jobs/{id}/cancel`` (Comfy-Org/ComfyUI ``server.py`` and ``comfy_execution/jobs.py``, PRs
#11054 and #14493; facts and sources in ``docs/providers/comfyui.md``). ComfyUI 0.3.64 has none of
them. This module transcribes how those routes build their answers from the queue's items
``[number, prompt_id, prompt, extra_data, outputs_to_execute]`` and its history entries, for the
two doubles that play a new server:

- the bundled sandbox server with ``jobs_api=True`` (``sandbox/server.py``);
- the test-only node pack that adds the routes to a real ComfyUI 0.3.64 (``tests/remote_nodes``),
  which loads this file by path: it stays standard-library only, with no package imports.

Each server keeps its own machinery (interrupt, dequeue); :func:`cancel` only decides, like
upstream's ``cancel_job``, which of the two to use.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "pending", "in_progress", "completed", "failed", "cancelled"
STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
NOT_FOUND = {"error": "Job not found"}  # GET /api/jobs/{id}, 404
PREVIEWABLE = frozenset({"images", "video", "audio", "3d", "text"})
THREE_D = (".obj", ".fbx", ".gltf", ".glb", ".usdz")
TEXT_FILES = (".txt", ".md", ".json")
TEXT_PREVIEW_MAX = 1024


def _prune(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _meta(extra: Any) -> tuple[Any, Any]:
    extra = extra if isinstance(extra, dict) else {}
    pnginfo = extra.get("extra_pnginfo") if isinstance(extra.get("extra_pnginfo"), dict) else {}
    workflow = pnginfo.get("workflow") if isinstance(pnginfo.get("workflow"), dict) else {}
    return extra.get("create_time"), workflow.get("id")


def _file_item(item: Any) -> Optional[dict]:
    """A dict item as is; a bare 3D file name as a file dict; anything else None."""
    if isinstance(item, dict):
        return item
    if isinstance(item, str) and item.lower().endswith(THREE_D):
        return {"filename": item, "type": "output", "subfolder": "", "mediaType": "3d"}
    return None


def _previewable(media: str, item: dict) -> bool:
    fmt = str(item.get("format") or "")
    name = str(item.get("filename") or "").lower()
    return (media in PREVIEWABLE or fmt.startswith(("video/", "audio/")) or name.endswith(THREE_D)
            or name.endswith(TEXT_FILES))


def _items(outputs: Any):
    """(node id, media type, item) of every list item of every node's outputs."""
    for nid, node in (outputs.items() if isinstance(outputs, dict) else ()):
        if not isinstance(node, dict):
            continue
        for media, items in node.items():
            if media != "animated" and isinstance(items, list):
                for item in items:
                    yield nid, media, item


def summary(outputs: Any) -> tuple[int, Optional[dict], int]:
    """(outputs_count, preview_output, previewable_outputs_count) like upstream's
    ``get_outputs_summary`` and ``count_previewable_outputs``: a saved visual output first,
    then any visual one, then a saved text file, then raw text."""
    count = previewable = 0
    slots: dict = {}
    for nid, media, raw in _items(outputs):
        item = _file_item(raw)
        if item is None:
            if media == "text" and raw is not None:
                text = str(raw[0] if isinstance(raw, (list, tuple)) and raw else raw)
                preview = {"content": text[:TEXT_PREVIEW_MAX], **({"truncated": True}
                                                                  if len(text) > TEXT_PREVIEW_MAX else {})}
                slots.setdefault("text", {**preview, "nodeId": nid, "mediaType": media})
            continue
        count += 1
        if not _previewable(media, item):
            continue
        previewable += 1
        enriched = {**item, "nodeId": nid}
        enriched.setdefault("mediaType", media)
        name = str(item.get("filename") or "").lower()
        slot = ("text_file" if media == "text" or name.endswith(TEXT_FILES)
                else "output" if item.get("type") == "output" else "other")
        slots.setdefault(slot, enriched)
    preview = next((slots[s] for s in ("output", "other", "text_file", "text") if s in slots), None)
    return count, preview, previewable


def normalize_outputs(outputs: Any) -> dict:
    """History outputs with bare 3D file names as file dicts and None items dropped."""
    out: dict = {}
    for nid, node in (outputs.items() if isinstance(outputs, dict) else ()):
        if not isinstance(node, dict):
            out[nid] = node
            continue
        out[nid] = {media: (items if media == "animated" or not isinstance(items, list) else
                            [_file_item(i) or i for i in items if i is not None]) for media, items in node.items()}
    return out


def from_queue(item: Any, status: str, detail: bool = False) -> dict:
    """A running or pending queue item as a job (``detail``: with its workflow, as GET by id)."""
    number, pid, prompt, extra = item[0], item[1], item[2], item[3]
    create_time, workflow_id = _meta(extra)
    job = _prune({"id": pid, "status": status, "priority": number, "create_time": create_time, "outputs_count": 0,
                  "previewable_outputs_count": 0, "workflow_id": workflow_id})
    if detail:
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def from_history(pid: str, entry: dict, detail: bool = False) -> dict:
    """A history entry as a job: completed, failed (with ``execution_error``, the error message's
    data verbatim) or cancelled (interrupted); ``detail`` adds outputs, execution_status, workflow."""
    number, _, prompt, extra = entry["prompt"][0], entry["prompt"][1], entry["prompt"][2], entry["prompt"][3]
    create_time, workflow_id = _meta(extra)
    info = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
    error = started = ended = None
    interrupted = False
    for m in info.get("messages") or []:
        if isinstance(m, (list, tuple)) and len(m) >= 2 and isinstance(m[1], dict):
            if m[0] == "execution_start":
                started = m[1].get("timestamp")
            elif m[0] in ("execution_success", "execution_error", "execution_interrupted"):
                ended = m[1].get("timestamp")
                error = m[1] if m[0] == "execution_error" else error
                interrupted = interrupted or m[0] == "execution_interrupted"
    status = COMPLETED
    if info.get("status_str") == "error":
        status = CANCELLED if interrupted else FAILED
    count, preview, previewable = summary(outputs)
    job = _prune({"id": pid, "status": status, "priority": number, "create_time": create_time,
                  "execution_start_time": started, "execution_end_time": ended, "execution_error": error,
                  "outputs_count": count, "previewable_outputs_count": previewable, "preview_output": preview,
                  "workflow_id": workflow_id})
    if detail:
        job["outputs"] = normalize_outputs(outputs)
        job["execution_status"] = entry.get("status")
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def get_job(pid: str, running: list, pending: list, history: Mapping) -> Optional[dict]:
    """GET /api/jobs/{id}: history first, then running, then pending; None → 404 NOT_FOUND."""
    if pid in history:
        return from_history(pid, history[pid], detail=True)
    for items, status in ((running, IN_PROGRESS), (pending, PENDING)):
        for item in items:
            if item[1] == pid:
                return from_queue(item, status, detail=True)
    return None


def _int(query: Mapping, name: str) -> Optional[int]:
    return int(query[name]) if name in query else None


def list_jobs(query: Mapping, running: list, pending: list, history: Mapping) -> tuple[int, dict]:
    """GET /api/jobs (``status``, ``workflow_id``, ``sort_by``, ``sort_order``, ``limit``,
    ``offset``): (HTTP status, body), with upstream's 400 answers."""
    wanted = list(STATUSES)
    if query.get("status"):
        wanted = [s.strip().lower() for s in str(query["status"]).split(",") if s.strip()]
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            return 400, {"error": f"Invalid status value(s): {', '.join(bad)}. Valid values: {', '.join(STATUSES)}"}
    sort_by = str(query.get("sort_by", "created_at")).lower()
    order = str(query.get("sort_order", "desc")).lower()
    if sort_by not in ("created_at", "execution_duration"):
        return 400, {"error": "sort_by must be 'created_at' or 'execution_duration'"}
    if order not in ("asc", "desc"):
        return 400, {"error": "sort_order must be 'asc' or 'desc'"}
    try:
        limit = _int(query, "limit")
    except ValueError:
        return 400, {"error": "limit must be an integer"}
    if limit is not None and limit <= 0:
        return 400, {"error": "limit must be a positive integer"}
    try:
        offset = max(0, _int(query, "offset") or 0)
    except ValueError:
        return 400, {"error": "offset must be an integer"}
    jobs = [from_queue(i, IN_PROGRESS) for i in running] if IN_PROGRESS in wanted else []
    jobs += [from_queue(i, PENDING) for i in pending] if PENDING in wanted else []
    if {COMPLETED, FAILED, CANCELLED} & set(wanted):
        jobs += [j for j in (from_history(k, v) for k, v in history.items()) if j["status"] in wanted]
    if query.get("workflow_id"):
        jobs = [j for j in jobs if j.get("workflow_id") == query["workflow_id"]]

    def key(job: dict) -> Any:
        if sort_by == "execution_duration":
            start, end = job.get("execution_start_time", 0), job.get("execution_end_time", 0)
            return end - start if end and start else 0
        return job.get("create_time", 0)

    jobs = sorted(jobs, key=key, reverse=order == "desc")
    total = len(jobs)
    page = jobs[offset:][:limit] if limit is not None else jobs[offset:]
    return 200, {"jobs": page, "pagination": {"offset": offset, "limit": limit, "total": total,
                                              "has_more": offset + len(page) < total}}


def cancel(pid: str, running: list, pending: list, interrupt: Callable[[str], bool],
           dequeue: Callable[[str], bool]) -> dict:
    """POST /api/jobs/{id}/cancel → ``{"cancelled": bool}``, always 200: a running job is
    interrupted (``interrupt`` acts only if that prompt still runs), a pending one dequeued (and
    interrupted if it started meanwhile); a finished or unknown id is a no-op (``False``)."""
    if any(i[1] == pid for i in running):
        return {"cancelled": bool(interrupt(pid))}
    if any(i[1] == pid for i in pending):
        return {"cancelled": bool(dequeue(pid) or interrupt(pid))}
    return {"cancelled": False}  # finished (in history) or unknown: both no-ops upstream
