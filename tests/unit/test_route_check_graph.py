"""``POST /comfyui_remote/profiles/{name}/check_graph``: the pre-flight of "Run a part of my graph
remotely" (design §4) over real HTTP, with the real TaskManager of test_routes' ``env``: a profile
that cannot take a graph is refused by name before any request to its service, and a graph with
node types the remote lacks gets one message listing all of them."""
from __future__ import annotations

import json

import pytest

from .test_routes import env  # noqa: F401  (the fixture)

GOOD = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "p"}}}


async def test_sandbox_has_every_node_type(env):  # noqa: F811
    status, body, _ = await env.post("/profiles/sandbox/check_graph", json={"workflow": GOOD})
    assert status == 200 and body == {"ok": True, "message": body["message"]} and body["ok"], body
    status, body, _ = await env.post("/profiles/sandbox/check_graph", json={"workflow": json.dumps(GOOD)})
    assert status == 200 and body["ok"] is True, body


async def test_missing_node_types_are_listed_in_one_message(env):  # noqa: F811
    graph = dict(GOOD)
    graph["4"] = {"class_type": "ImageScaleBy", "inputs": {"image": ["2", 0], "upscale_method": "nearest-exact",
                                                        "scale_by": 2.0}}
    graph["5"] = {"class_type": "FancyCustomNode", "inputs": {"image": ["4", 0]}}
    status, body, _ = await env.post("/profiles/sandbox/check_graph", json={"workflow": graph})
    assert status == 200 and body["ok"] is False, body
    assert "FancyCustomNode" in body["message"] and "ImageScaleBy" in body["message"], body
    assert "#4" in body["message"] and "#5" in body["message"], body


@pytest.mark.parametrize("name,needle", [("speedpix", "cannot run a part of your graph"),
                                         ("nextgpu", "cannot run a part of your graph"),
                                         ("runninghub", "RUNNINGHUB_BASE_WORKFLOW_ID")])
async def test_profiles_that_cannot_take_a_graph_say_so(env, name, needle):  # noqa: F811
    status, body, _ = await env.post(f"/profiles/{name}/check_graph", json={"workflow": GOOD})
    assert status == 200 and body["ok"] is False and needle in body["message"] and name in body["message"], body


async def test_unknown_profile_and_bad_body(env):  # noqa: F811
    status, body, _ = await env.post("/profiles/nobody/check_graph", json={"workflow": GOOD})
    assert status == 404 and "nobody" in body["error"]
    for bad in ({}, {"workflow": ""}, {"workflow": 7}):
        status, body, _ = await env.post("/profiles/sandbox/check_graph", json=bad)
        assert status == 400 and "workflow" in body["error"], (bad, body)
