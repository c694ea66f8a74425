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
    assert status == 200 and body == {"ok": True, "message": body["message"], "node_types": "listed"}, body
    assert "every node type" in body["message"]
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


async def test_a_service_that_cannot_list_node_types_says_so_instead_of_claiming_a_check(env):  # noqa: F811
    """Comfy Cloud (API v2) has no node list: the graph is taken, and the answer says its node types
    were not checked here (the service refuses an unknown one at submit, before anything is paid)."""
    with (env.home / "profiles.toml").open("a") as f:
        f.write('[profiles.cloud]\nprovider = "comfycloud"\nurl = "http://127.0.0.1:9"\napi_key = "comfyui-test"\n')
    status, body, _ = await env.post("/profiles/cloud/check_graph", json={"workflow": GOOD})
    assert status == 200 and body["ok"] is True and body["node_types"] == "none", body
    assert "cannot list its node types" in body["message"] and "every node type" not in body["message"], body
    assert "comfyui-test" not in json.dumps(body)


async def test_tensorart_graphs_go_through_the_services_own_check(env):  # noqa: F811
    """TAMS checks a graph itself (``/v1/jobs/workflow/params/check``, unpaid): accepted, the answer
    says the service checked it; a node type the service lacks is refused by it, nothing paid."""
    from ..fakes.tensorart import DEFAULT_API_KEY, FakeTensorArt

    ta = FakeTensorArt()
    await ta.start()
    try:
        with (env.home / "profiles.toml").open("a") as f:
            f.write(f'[profiles.tams]\nprovider = "tensorart"\nurl = "{ta.url}"\napi_key = "{DEFAULT_API_KEY}"\n'
                    'max_rps = 0\n')
        graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
                 "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                 "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "p"}}}
        status, body, _ = await env.post("/profiles/tams/check_graph", json={"workflow": graph})
        assert status == 200 and body["ok"] is True and body["node_types"] == "service", body
        assert "checked the graph and accepted it" in body["message"], body
        graph["4"] = {"class_type": "FancyCustomNode", "inputs": {"image": ["2", 0]}}
        status, body, _ = await env.post("/profiles/tams/check_graph", json={"workflow": graph})
        assert status == 200 and body["ok"] is False and body["node_types"] is None, body
        assert "FancyCustomNode" in body["message"], body
        assert ta.count("workflow") == 0 and ta.count("params_check") == 2  # checked twice, nothing created
    finally:
        await ta.stop()
