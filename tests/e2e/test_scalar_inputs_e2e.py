"""Scalars across the boundary on a real remote ComfyUI: a negative INT and a BOOLEAN false go up
through RemoteInputInt / RemoteInputBoolean, come back through the remote PreviewAny and
RemoteFetchValue, and the remote graph holds them as JSON numbers and booleans — while a text
"false" aimed at a BOOLEAN (which ComfyUI's bool() would read as true) is refused before anything
is paid."""
from __future__ import annotations

import json

import pytest

from . import harness

pytestmark = [pytest.mark.e2e]

# the remote part: ComfyUI's own primitives, each shown by a PreviewAny (str(value))
REMOTE = {
    "1": {"class_type": "PrimitiveInt", "inputs": {"value": 5}},
    "2": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}},
    "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
}


def local_graph(int_value: int, flag: bool, tag: str) -> dict:
    remote = json.loads(json.dumps(REMOTE))
    remote["3"]["_meta"] = {"title": tag}  # a graph of its own on every run: nothing reused
    return {
        "10": {"class_type": "RemoteInputInt", "inputs": {"target": "1.value", "value": int_value}},
        "11": {"class_type": "RemoteInputBoolean", "inputs": {"target": "2.value", "value": flag, "inputs": ["10", 0]}},
        "12": {"class_type": "RemoteRun", "inputs": {"profile": "comfyui", "workflow": json.dumps(remote),
                                                     "inputs": ["11", 0], "reuse_result": False, "timeout_s": 300}},
        "13": {"class_type": "RemoteFetchValue", "inputs": {"result": ["12", 2], "select": "3"}},
        "14": {"class_type": "RemoteFetchValue", "inputs": {"result": ["12", 2], "select": "4"}},
        "15": {"class_type": "PreviewAny", "inputs": {"source": ["13", 0]}},
        "16": {"class_type": "PreviewAny", "inputs": {"source": ["14", 2]}},
    }


@pytest.mark.parametrize("int_value, flag", [(-7, False), (2 ** 63 - 1, True)])
async def test_a_negative_int_and_a_boolean_cross_both_ways(int_value, flag, local_comfy, remote_comfy):
    tag = f"scalars {int_value} {flag}"
    async with harness.Client(local_comfy.url) as c:
        hist = await c.wait_done(await c.queue(local_graph(int_value, flag, tag)), 300)
    assert hist["status"]["status_str"] == "success", hist["status"]
    # back as values: RemoteFetchValue's int and boolean outputs, shown locally
    assert hist["outputs"]["15"]["text"] == [str(int_value)]
    assert hist["outputs"]["16"]["text"] == [str(flag)]
    async with harness.Client(remote_comfy.url) as rc:
        ran = [h for h in (await rc.get("/history")).values()
               if (h["prompt"][2].get("3", {}).get("_meta") or {}).get("title") == tag]
    assert len(ran) == 1  # one paid run
    sent = ran[0]["prompt"][2]
    assert sent["1"]["inputs"]["value"] == int_value and sent["2"]["inputs"]["value"] is flag


async def test_text_false_for_a_boolean_is_refused_before_anything_is_paid(local_comfy, remote_comfy):
    remote = json.loads(json.dumps(REMOTE))
    remote["3"]["_meta"] = {"title": "text for a boolean"}
    graph = {
        "10": {"class_type": "RemoteInputText", "inputs": {"target": "2.value", "text": "false"}},
        "12": {"class_type": "RemoteRun", "inputs": {"profile": "comfyui", "workflow": json.dumps(remote),
                                                     "inputs": ["10", 0], "reuse_result": False, "timeout_s": 300}},
        "13": {"class_type": "RemoteFetchValue", "inputs": {"result": ["12", 2], "select": "4"}},
        "16": {"class_type": "PreviewAny", "inputs": {"source": ["13", 2]}},
    }
    async with harness.Client(remote_comfy.url) as rc:
        before = len(await rc.get("/history"))
    async with harness.Client(local_comfy.url) as c:
        hist = await c.wait_done(await c.queue(graph), 300)
    assert hist["status"]["status_str"] == "error"
    (err,) = [m[1] for m in hist["status"]["messages"] if m[0] == "execution_error"]
    assert err["node_id"] == "12"
    text = err["exception_message"]
    assert "PrimitiveBoolean.value takes true or false" in text and "RemoteInputBoolean" in text, text
    async with harness.Client(remote_comfy.url) as rc:
        assert len(await rc.get("/history")) == before  # nothing ran remotely
