"""A proxy in front of a provider's fake that changes its JSON answers the way a fuzz example
says: a node of the answer (picked by index among all its nodes) replaced by arbitrary JSON,
deleted, or the whole body cut short. The provider then reads answers that are *almost* right —
the shapes that reach its deep branches — instead of noise it refuses at the first key."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from hypothesis import strategies as st

from comfyui_remote.tests.fakes.toolkit import FakeServer
from comfyui_remote.tests.fuzz.strategies import wire_json

HOP = {"content-length", "content-encoding", "transfer-encoding", "connection", "keep-alive", "host"}


@dataclass
class Plan:
    edits: list = field(default_factory=list)  # (index, "replace" | "delete", value)
    cut: int = -1  # ≥ 0: the body is cut to this many bytes

    def __repr__(self) -> str:
        return f"Plan(edits={self.edits!r}, cut={self.cut})"


def plans(*modules) -> st.SearchStrategy:
    edit = st.tuples(st.integers(0, 400), st.sampled_from(("replace", "replace", "delete")), wire_json(*modules))
    return st.builds(Plan, st.lists(edit, min_size=1, max_size=4),
                     st.one_of(st.just(-1), st.just(-1), st.just(-1), st.integers(0, 200)))


def _nodes(value: Any, out: list) -> list:
    """(container, key) of every node below the root, depth first."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in list(items):
        out.append((value, k))
        _nodes(v, out)
    return out


def mutate(value: Any, plan: Plan) -> Any:
    for index, op, new in plan.edits:
        nodes = _nodes(value, [])
        if not nodes:
            return new if op == "replace" else value
        parent, key = nodes[index % len(nodes)]
        if op == "delete":
            del parent[key]
        else:
            parent[key] = new
    return value


class Mutating(FakeServer):
    name = "mutating"

    def __init__(self, upstream: str):
        super().__init__()
        self.upstream = upstream.rstrip("/")

    def setup_routes(self, router) -> None:
        self.plan = Plan()
        self.session: aiohttp.ClientSession | None = None

        async def forward(request: web.Request) -> web.StreamResponse:
            if request.headers.get("Upgrade", "").lower() == "websocket":
                raise web.HTTPNotFound()  # push channels are not fuzzed here: the looks are
            if self.session is None:
                self.session = aiohttp.ClientSession(auto_decompress=True)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
            async with self.session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                            data=await request.read(), allow_redirects=False) as up:
                body = await up.read()
                out_headers = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
                if "json" in up.headers.get("Content-Type", ""):
                    try:
                        body = json.dumps(mutate(json.loads(body), self.plan), allow_nan=True).encode()
                    except ValueError:
                        pass
                    if self.plan.cut >= 0:
                        body = body[: self.plan.cut]
                return web.Response(status=up.status, body=body, headers=out_headers)

        router.add_route("*", "/{tail:.*}", forward, name="forward")

    async def stop(self) -> None:
        if self.session is not None:
            await self.session.close()
        await super().stop()
