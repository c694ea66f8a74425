"""The panel's REST routes under /comfyui_remote/… (design §4). No ComfyUI import: ``__init__``
passes ComfyUI's RouteTableDef; tests pass their own. Every answer goes through redaction; no
route ever returns a key; files are served only from inside the results folder."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from aiohttp import web

from .engine import graph_preflight, media, posters, redaction
from .engine.journal import STATE_FILTERS
from .engine.profiles import SECRET_FIELDS
from .providers import kinds
from .providers.base import ConfigError, RemoteError

PREFIX = "/comfyui_remote"
MAX_LIMIT = 200
MAX_KEY_LEN = 16 * 1024
# Output types a browser may show inline from ComfyUI's origin (passive media and plain text only).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif", "image/avif", "image/bmp",
                          "video/mp4", "video/webm", "video/quicktime", "video/x-matroska", "audio/mpeg",
                          "audio/wav", "audio/x-wav", "audio/ogg", "audio/opus", "audio/flac", "audio/mp4",
                          "audio/aac", "text/plain"})
# Types that go out under their own name, as downloads; anything else (HTML, SVG, XML, JS, …) is
# sent as application/octet-stream.
DOWNLOAD_TYPES = frozenset(kinds.MIMES.values()) - INLINE_TYPES
OCTET = "application/octet-stream"
# Every saved output, whatever its type: never sniffed, never a page that can run anything.
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"}


class FileAsIs(web.FileResponse):
    """A file response that sends the file itself. aiohttp's FileResponse serves a sibling
    ``<name>.gz``/``.br`` as the file's compressed form to a client that accepts the encoding;
    in a task's results folder such a sibling is another result of the service, so the file is
    prepared as if the client accepted no encoding."""

    async def prepare(self, request: web.BaseRequest) -> Any:
        plain = {k: v for k, v in request.headers.items() if k.lower() != "accept-encoding"}
        return await super().prepare(request.clone(headers=plain))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(redaction.scrub(data), status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


async def _body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body is not valid JSON"}),
                                 content_type="application/json")
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}),
                                 content_type="application/json")
    return data


def setup_routes(routes: web.RouteTableDef, get_manager: Callable[[], Any]) -> None:
    def engine(coro: Any) -> asyncio.Future:
        m = get_manager()
        return asyncio.wrap_future(m.call(coro))

    def task_or_404(task_id: str) -> dict:
        snap = get_manager().snapshot(task_id)
        if snap is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no task with id {task_id!r}"}),
                                   content_type="application/json")
        return snap

    @routes.get(PREFIX + "/tasks")
    async def list_tasks(request: web.Request) -> web.Response:
        state = request.query.get("state") or None
        if state is not None and state not in STATE_FILTERS:
            return _error(400, f"state must be one of {', '.join(STATE_FILTERS)}")
        try:
            limit = int(request.query.get("limit", "50"))
            before = int(request.query["before"]) if request.query.get("before") else None
        except ValueError:
            return _error(400, "limit and before must be whole numbers")
        if not 1 <= limit <= MAX_LIMIT:
            return _error(400, f"limit must be between 1 and {MAX_LIMIT}")
        if before is not None and not 0 <= before < 2**63:  # the journal's cursor is a 64-bit row number
            return _error(400, "before must be a row number from an earlier page's 'next'")
        tasks, nxt = await asyncio.to_thread(get_manager().list_tasks, state, limit, before)
        return _json({"tasks": tasks, "next": nxt})

    @routes.get(PREFIX + "/tasks/{id}")
    async def get_task(request: web.Request) -> web.Response:
        return _json(await asyncio.to_thread(task_or_404, request.match_info["id"]))

    @routes.post(PREFIX + "/tasks/{id}/cancel")
    async def cancel_task(request: web.Request) -> web.Response:
        task_id = request.match_info["id"]
        await asyncio.to_thread(task_or_404, task_id)
        m = get_manager()
        try:
            snap = await engine(m.cancel(task_id, "cancelled from the Remote panel"))
        except RemoteError as e:  # the task vanished meanwhile (a journal reset)
            return _error(404, str(e))
        return _json(snap)

    @routes.post(PREFIX + "/tasks/{id}/recover")
    async def recover_task(request: web.Request) -> web.Response:
        task_id = request.match_info["id"]
        m = get_manager()
        await asyncio.to_thread(task_or_404, task_id)
        try:
            local_id = await engine(m.recover(task_id))
        except RemoteError as e:
            return _error(409, str(e))
        return _json(m.snapshot(local_id))

    @routes.get(PREFIX + "/tasks/{id}/outputs/{n}")
    async def task_output(request: web.Request) -> web.StreamResponse:
        task_id = request.match_info["id"]
        await asyncio.to_thread(task_or_404, task_id)  # an unknown task is 404 whatever n is
        raw_n = request.match_info["n"]
        if not (raw_n.isascii() and raw_n.isdigit()):  # int() would also take " 1", "+1", "1_0", "١"
            return _error(400, "output index must be a whole number")
        n = int(raw_n)
        m = get_manager()
        outs = await asyncio.to_thread(m.outputs_of, task_id)
        rec = next((o for o in outs if o["n"] == n), None)
        if rec is None:
            return _error(404, f"task {task_id} has no output {raw_n}")
        if rec.get("kind") == "text" and not rec.get("path"):
            return web.Response(text=redaction.scrub(rec.get("text") or ""), content_type="text/plain",
                                headers={**SAFE_HEADERS, "Content-Disposition": _disposition(
                                    "inline", rec.get("filename") or f"output_{n}.txt")})
        path = _inside(Path(rec.get("path") or ""), m.results_dir) if rec.get("path") else None
        if path is None or not path.is_file():
            return _error(404, f"output {n} of task {task_id} is not on disk (use Recover)")
        ctype = served_type(path.name, rec.get("mime"))
        thumb = request.query.get("thumb")
        if thumb:
            try:
                size = int(thumb)
            except ValueError:
                return _error(400, "thumb must be a size in pixels")
            # a video's poster is its first frame; a GIF (a video by kind) is read like an image
            video = ctype.startswith("video/") or (rec.get("kind") == "video" and ctype != "image/gif")
            try:
                if video:
                    data = await asyncio.to_thread(posters.poster, str(path), size)
                else:
                    data = await asyncio.to_thread(media.thumbnail, str(path), size)
            except Exception:
                return _error(415, f"output {n} is not an image or a video")
            return web.Response(body=data, content_type="image/png",
                                headers={**SAFE_HEADERS, "Cache-Control": "private, max-age=3600"})
        # Files come from a remote service: only passive types are shown inline. Anything that a
        # browser could run in ComfyUI's origin (HTML, SVG, XML, JS, …) is sent as a download.
        inline = ctype in INLINE_TYPES
        sent = ctype if inline or ctype in DOWNLOAD_TYPES else OCTET
        if sent == "text/plain":
            sent = "text/plain; charset=utf-8"
        # FileResponse answers Range requests (206), so a video or audio player can seek
        return FileAsIs(path, headers={
            **SAFE_HEADERS, "Content-Type": sent,
            "Content-Disposition": _disposition("inline" if inline else "attachment", path.name)})

    @routes.get(PREFIX + "/profiles")
    async def list_profiles(request: web.Request) -> web.Response:
        m = get_manager()

        def collect() -> list:
            out = []
            for p in m.profiles.all():
                item = p.public()
                try:
                    from .providers import provider_class
                    item["capabilities"] = provider_class(p.provider).capabilities.to_json()
                except Exception:
                    item["capabilities"] = None
                item["missing"] = p.missing()
                out.append(item)
            return out

        return _json(await asyncio.to_thread(collect))

    @routes.post(PREFIX + "/profiles/{name}/test")
    async def test_profile(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        m = get_manager()
        if name not in await asyncio.to_thread(m.profiles.names):  # (reads profiles.toml: not on this loop)
            return _error(404, f"no profile named {name!r}")
        ok, message = await engine(m.test_profile(name))
        return _json({"ok": ok, "message": message})

    @routes.post(PREFIX + "/profiles/{name}/check_graph")
    async def check_graph(request: web.Request) -> web.Response:
        """Pre-flight of a part of a graph run remotely: ``{workflow}`` (API format) → ``{ok, message,
        node_types}`` (how the node types were checked: listed, service, none; null when refused)."""
        name = request.match_info["name"]
        m = get_manager()
        if name not in await asyncio.to_thread(m.profiles.names):
            return _error(404, f"no profile named {name!r}")
        workflow = (await _body(request)).get("workflow")
        if isinstance(workflow, dict):
            workflow = json.dumps(workflow)
        if not isinstance(workflow, str) or not workflow.strip():
            return _error(400, "workflow must be an API-format graph (JSON object or text)")
        ok, message, checked = await engine(graph_preflight.check_graph(m, name, workflow))
        return _json({"ok": ok, "message": message, "node_types": checked})

    @routes.post(PREFIX + "/profiles/{name}/key")
    async def set_key(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        m = get_manager()
        # JSON only: a page on another site can send a "simple" cross-site request (form or plain
        # text) to a ComfyUI on the network, but not one with this content type
        if request.content_type != "application/json":
            return _error(415, "send the key as JSON (Content-Type: application/json)")
        if name not in await asyncio.to_thread(m.profiles.names):
            return _error(404, f"no profile named {name!r}")
        body = await _body(request)
        field = body.get("field") or "api_key"
        value = body.get("value")
        if not isinstance(field, str) or field not in SECRET_FIELDS:  # a list or object is unhashable
            return _error(400, f"field must be one of {', '.join(sorted(SECRET_FIELDS))}")
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_KEY_LEN:
            return _error(400, "value must be a non-empty string")
        try:
            await asyncio.to_thread(m.profiles.store.set, name, field, value.strip())
        except ConfigError as e:
            return _error(400, str(e))
        profile = await asyncio.to_thread(m.profiles.get, name)
        configured = await asyncio.to_thread(lambda: profile.configured)
        return _json({"ok": True, "profile": name, "field": field, "configured": configured})


def _inside(path: Path, root: Path) -> Path | None:
    """The resolved path if it lies inside ``root`` (symlinks and ``..`` resolved), else None."""
    try:
        real = path.resolve(strict=False)
        base = Path(root).resolve(strict=False)
    except (OSError, RuntimeError):
        return None
    return real if real == base or base in real.parents else None


def served_type(name: str, recorded: Any = None) -> str:
    """The type an output is served as: the pack's own table by file extension, else the type the
    service recorded for a file saved without a known extension. The bytes are never sniffed."""
    by_name = kinds.mime_of(name)
    if by_name != OCTET:
        return by_name.lower()
    told = (recorded if isinstance(recorded, str) else "").split(";")[0].strip().lower()
    return told or OCTET


def _disposition(how: str, name: str) -> str:
    return f'{how}; filename="{_ascii_name(name)}"; filename*=UTF-8\'\'{quote(name, safe="")}'


def _ascii_name(name: str) -> str:
    """A file name safe inside a quoted header value (the exact name goes in filename*)."""
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name) or "output"
