import asyncio

from comfyui_remote.engine import redaction
from comfyui_remote.engine.events import EventHub


async def test_rate_limit_keeps_state_changes_and_the_last_update():
    hub = EventHub(rate=5.0)
    got = []
    hub.subscribe(got.append)
    hub.publish({"id": "a", "state": "queued", "progress": None})
    for i in range(50):  # a burst of progress in one state
        hub.publish({"id": "a", "state": "running", "progress": i / 50})
    hub.publish({"id": "b", "state": "queued"})  # other tasks are limited separately
    assert [e["state"] for e in got if e["id"] == "a"] == ["queued", "running"]
    await asyncio.sleep(0.3)
    a = [e for e in got if e["id"] == "a"]
    assert a[-1]["progress"] == 49 / 50  # the held-back last word arrives
    assert len(a) <= 4
    assert any(e["id"] == "b" for e in got)


async def test_events_are_scrubbed():
    redaction.register("event-canary-0x1234")
    hub = EventHub()
    got = []
    hub.subscribe(got.append)
    hub.publish({"id": "a", "state": "failed", "error": "bad key event-canary-0x1234"})
    assert got[0]["error"] == "bad key ***"
