"""A server that answers every request, on every path and method, with the answer a fuzz example
drew: a status, a content type and a body (JSON built from the reading module's own words, or
arbitrary bytes)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import Optional

from aiohttp import web
from hypothesis import strategies as st

from comfyui_remote.tests.fakes.toolkit import FakeServer
from comfyui_remote.tests.fuzz.strategies import wire_json

STATUSES = (200, 200, 200, 200, 201, 202, 204, 400, 401, 403, 404, 409, 410, 422, 429, 500, 502, 503)
TYPES = ("application/json", "application/json; charset=utf-8", "text/html", "text/plain", "")


@dataclass
class Answer:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"


def answers(*modules: ModuleType) -> st.SearchStrategy:
    def encode(value) -> bytes:
        return json.dumps(value, allow_nan=True).encode()
    bodies = (wire_json(*modules).map(encode)
              | wire_json(*modules).map(encode).flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n]))
              | st.binary(max_size=64))
    return st.builds(Answer, st.sampled_from(STATUSES), st.sampled_from(TYPES), bodies)


class Anything(FakeServer):
    name = "anything"

    def setup_routes(self, router) -> None:
        self.answer: Optional[Answer] = Answer()
        self.count = 0

        async def any_request(request: web.Request) -> web.StreamResponse:
            self.count += 1
            a = self.answer or Answer()
            if request.headers.get("Upgrade", "").lower() == "websocket" and a.status == 101:
                raise web.HTTPBadRequest()  # never a socket here: push channels are refused
            headers = {"Content-Type": a.content_type} if a.content_type else {}
            if a.status == 204:
                return web.Response(status=204)
            return web.Response(status=a.status, body=a.body, headers=headers)

        router.add_route("*", "/{tail:.*}", any_request, name="any")
