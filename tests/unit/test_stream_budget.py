"""Opening a push channel is a request to the service: every WebSocket handshake and every event
stream (re)connect takes one from the profile's request budget, as API calls do — else 100 tasks
opening their streams at once double the rate a service sees."""
from __future__ import annotations

from aiohttp import web

from comfyui_remote.engine import sse
from comfyui_remote.engine.pacing import Budget
from comfyui_remote.engine.transfer import Http


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


async def test_each_event_stream_connect_takes_one_from_the_budget():
    async def events(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b"event: a\ndata: 1\n\n")
        return resp  # ends: the client reconnects

    app = web.Application()
    app.router.add_get("/events", events)
    runner, url = await serve(app)
    http = Http(budget=Budget.for_limit(100))
    connects = 0
    try:
        async for ev in sse.events(http, url + "/events", policy=sse.StreamPolicy(backoff_s=0.01)):
            connects += ev.kind == "connected"
            if connects == 3:
                break
    finally:
        await http.close()
        await runner.cleanup()
    assert http.budget.sent == 3


async def test_a_websocket_handshake_takes_one_from_the_budget():
    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.close()
        return sock

    app = web.Application()
    app.router.add_get("/ws", ws)
    runner, url = await serve(app)
    http = Http(budget=Budget.for_limit(100))
    try:
        sock = await http.ws_connect(url.replace("http", "ws") + "/ws")
        await sock.close()
    finally:
        await http.close()
        await runner.cleanup()
    assert http.budget.sent == 1
