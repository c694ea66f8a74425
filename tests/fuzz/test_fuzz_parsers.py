"""Every parser of what a service answers or a user types, fed arbitrary input of the type it
takes: it returns its result or raises the pack's own error with a clear message — never another
exception. (The providers' readers over HTTP are in test_fuzz_providers.py.)"""
from __future__ import annotations

import json

import pytest
from hypothesis import example, given, strategies as st

from comfyui_remote.engine import comfy_progress, results, sse, workflows
from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.rules import RetryPolicy
from comfyui_remote.engine.transfer import Http
from comfyui_remote.engine.websocket import Frame
from comfyui_remote.providers import (base, comfy_graph_check, comfy_jobs, comfy_native, comfycloud, comfycloud_wire,
                                      graph, nextgpu, provider_class, runninghub_parse, speedpix_wire, tensorart_wire)
from comfyui_remote.providers.comfy_native import ComfyServer, Followed
from comfyui_remote.providers.base import Output, Target, TaskUpdate
from comfyui_remote.tests.fuzz.strategies import FUZZ, assert_clear, json_objects, scalars, wire_json

WIDGET_TEXT = st.text(max_size=60) | st.from_regex(r"\A[\w:\-. @#/{}\[\]\"]{0,40}\Z")


def clear(fn, *args, **kw):
    """``fn(*args)``'s result, or the RemoteError it raised (checked to be clear)."""
    try:
        return fn(*args, **kw)
    except Exception as e:  # noqa: BLE001 — the point: only the pack's own errors
        assert_clear(e)
        return e


@pytest.fixture(scope="module")
def rh(tmp_path_factory):
    home = tmp_path_factory.mktemp("rh")
    (home / "profiles.toml").write_text('[profiles.rh]\nprovider = "runninghub"\nurl = "http://127.0.0.1:9"\n'
                                        'api_key = "k"\nbase_workflow_id = "1234567890"\n')
    profile = Profiles(home, env={}).get("rh")
    return provider_class("runninghub")(profile, Http(provider="runninghub", profile="rh", policy=RetryPolicy()))


# ---------------------------------------------------------------- what users type

@FUZZ
@given(text=WIDGET_TEXT, addressing=st.sampled_from(("node", "field")))
def test_target(text, addressing):
    got = clear(base.parse_target, text, addressing)
    assert isinstance(got, (Target, Exception))


OUTPUT_RECORDS = st.fixed_dictionaries({}, optional={
    "kind": st.sampled_from(("image", "video", "text", "file")) | st.text(max_size=5) | st.none() | st.integers(),
    "node": st.none() | st.text(max_size=6) | st.integers(),
    "field": st.none() | st.text(max_size=6) | st.integers(),
    "filename": st.none() | st.text(max_size=12) | st.integers(),
    "mime": st.none() | st.sampled_from(("image/png", "video/mp4")) | st.text(max_size=8),
})


@FUZZ
@example(outputs=[{"filename": 1}], select="", want="image")
@given(outputs=st.lists(OUTPUT_RECORDS, max_size=5), select=WIDGET_TEXT,
       want=st.sampled_from(("image", "video", "audio", "text", "file", "any")))
def test_select(outputs, select, want):
    got = clear(results.select_outputs, outputs, select, want=want)
    assert isinstance(got, (list, Exception))


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    home = tmp_path_factory.mktemp("wf")
    (home / "workflows").mkdir()
    (home / "workflows" / "mine.json").write_text("{}")
    return home, Profiles(home, env={}).get("sandbox")


@FUZZ
@given(text=WIDGET_TEXT | st.text(max_size=300).map(lambda t: t + ".json"))
@example(text="a\x00b.json")
@example(text="x" * 300 + ".json")
def test_workflow(text, sandbox):
    home, profile = sandbox
    got = clear(workflows.resolve_workflow, text, profile, home, home / "workflows")
    if isinstance(got, tuple):
        assert all(isinstance(x, str) for x in got)


@FUZZ
@given(text=st.text(max_size=80) | wire_json(graph).map(json.dumps))
def test_api_graph(text):
    got = clear(graph.parse_api_graph, text, provider="p", profile="q")
    assert isinstance(got, (dict, Exception))
    assert isinstance(workflows.graph_label(text), str)


@FUZZ
@given(text=WIDGET_TEXT | wire_json(runninghub_parse).map(json.dumps))
def test_runninghub_workflow(text, rh):
    assert isinstance(clear(runninghub_parse.parse_workflow, rh, text), (runninghub_parse.Workflow, Exception))


@FUZZ
@given(text=WIDGET_TEXT)
def test_speedpix_workflow_and_node_names(text):
    assert isinstance(clear(speedpix_wire.parse_workflow, text), (tuple, Exception))
    assert isinstance(clear(speedpix_wire.node_of, text), tuple)


# ---------------------------------------------------------------- what services answer

@FUZZ
@given(items=st.lists(wire_json(runninghub_parse), max_size=6), data=wire_json(runninghub_parse),
       code=wire_json(), msg=st.text(max_size=30))
def test_runninghub_answers(items, data, code, msg, rh):
    got = clear(runninghub_parse.outputs_from, items)
    assert isinstance(got, (tuple, Exception))
    assert isinstance(clear(runninghub_parse.succeeded, items, "SUCCESS"), (TaskUpdate, Exception))
    reason = clear(runninghub_parse.reason_of, data)
    assert isinstance(reason, dict)
    assert isinstance(clear(runninghub_parse.interrupted, reason), bool)
    assert isinstance(clear(runninghub_parse.failure, rh, reason), Exception)
    assert isinstance(clear(runninghub_parse.validation_error, rh, code, msg, data), Exception)
    if isinstance(data, dict):
        targets = [(base.parse_target("1.text", "node"), None)]
        clear(runninghub_parse.check_app_targets, rh, data, targets)


@FUZZ
@given(data=json_objects(speedpix_wire))
def test_speedpix_outputs(data):
    got = clear(speedpix_wire.parse_outputs, data)
    assert isinstance(got, (list, Exception))
    assert all(isinstance(o, Output) for o in (got if isinstance(got, list) else []))


@FUZZ
@given(job=json_objects(tensorart_wire), info=wire_json(tensorart_wire), text=wire_json(tensorart_wire))
def test_tensorart_answers(job, info, text):
    got = clear(tensorart_wire.outputs_of, job)
    assert isinstance(got, (list, Exception))
    got = clear(tensorart_wire.running_info, info)
    assert isinstance(got, (tuple, Exception))
    if isinstance(got, tuple):
        assert got[0] is None or 0.0 <= got[0] <= 1.0, got
    assert isinstance(clear(tensorart_wire.lines, text), dict)
    assert clear(tensorart_wire.progress_fraction, text) is None or 0.0 <= tensorart_wire.progress_fraction(text) <= 1.0


@FUZZ
@given(nodes=json_objects(comfycloud_wire, comfy_graph_check), prog=wire_json(comfycloud_wire),
       classes=st.none() | json_objects())
def test_comfycloud_answers(nodes, prog, classes):
    assert isinstance(clear(comfycloud_wire.node_errors, nodes), (tuple, Exception))
    upd = clear(comfycloud_wire.progress, prog, classes)
    assert isinstance(upd, (TaskUpdate, Exception))
    if isinstance(upd, TaskUpdate):
        assert upd.progress is None or 0.0 <= upd.progress <= 1.0


@FUZZ
@given(errors=json_objects(comfy_graph_check), data=wire_json(comfy_graph_check), job=json_objects(comfy_jobs))
@example(errors={"1": {"errors": 1}}, data={}, job={})  # found: node_errors' "errors" not a list
def test_comfyui_validation_answers(errors, data, job, rh):
    assert isinstance(clear(comfy_graph_check.summarise, errors), (tuple, Exception))
    assert isinstance(clear(comfy_graph_check.rejected, rh, data), Exception)
    assert isinstance(clear(comfy_jobs.classes, job), (dict, type(None), Exception))


FRAME_TYPES = ("execution_start", "execution_cached", "executing", "progress", "progress_state", "executed",
               "execution_success", "execution_error", "execution_interrupted", "status")


@FUZZ
@given(frames=st.lists(st.fixed_dictionaries({"type": st.sampled_from(FRAME_TYPES) | scalars,
                                              "data": json_objects(comfy_progress) | scalars}), max_size=6)
       | st.lists(wire_json(comfy_progress), max_size=3),
       classes=st.none() | json_objects(), pid=st.none() | st.text(max_size=4))
def test_comfyui_progress_frames(frames, classes, pid):
    prog = comfy_progress.ComfyProgress(classes, pid)
    for fr in frames:
        assert isinstance(clear(prog.feed, fr), (bool, Exception))
    upd = clear(prog.update)
    assert isinstance(upd, (TaskUpdate, Exception))
    f = clear(prog.fraction)
    assert f is None or isinstance(f, Exception) or 0.0 <= f <= 1.0, f


@FUZZ
@given(data=st.binary(max_size=40) | st.binary(max_size=20).map(lambda b: b"\x00\x00\x00\x01\x00\x00\x00\x01" + b))
def test_comfyui_binary_frames(data):
    assert isinstance(clear(comfy_progress.binary_preview, data), (tuple, type(None), Exception))


@FUZZ
@given(chunks=st.lists(st.binary(max_size=30) | st.sampled_from((b"data: {\"a\":1}\n", b"\r\n", b"event: x\r",
                                                                 b": ping\n\n", b"data:[1,\n", b"\n\n")),
                       max_size=12))
def test_sse_stream(chunks):
    parser = sse.Parser()
    for c in chunks:
        got = clear(parser.feed, c)
        assert isinstance(got, list) and all(isinstance(e, sse.Event) for e in got), got


# ---------------------------------------------------------------- what push channels carry

@pytest.fixture(scope="module")
def ng(tmp_path_factory):
    home = tmp_path_factory.mktemp("ng")
    (home / "profiles.toml").write_text('[profiles.ng]\nprovider = "nextgpu"\nurl = "http://127.0.0.1:9"\n'
                                        'user = "fuzz-user"\ntoken = "fuzz-token"\n')
    profile = Profiles(home, env={}).get("ng")
    return provider_class("nextgpu")(profile, Http(provider="nextgpu", profile="ng", policy=RetryPolicy()))


NG_ID = "nextGPU2026"


@FUZZ
@given(msg=json_objects(nextgpu) | st.fixed_dictionaries({
    "messageID": st.just(1) | scalars, "taskID": st.just(NG_ID) | scalars,
    "tasks": st.lists(st.fixed_dictionaries({"subID": st.just(NG_ID + "_0001") | scalars}, optional={
        "status": scalars, "ossUrls": wire_json(), "spareWaitCount": scalars, "initWaitCount": scalars}),
        max_size=3) | scalars}), count=scalars)
def test_nextgpu_socket_messages(msg, count, ng):
    ref = base.RemoteRef(NG_ID, {"count": count}, None)
    upd = clear(ng._snapshot, ref, msg)
    assert upd is None or isinstance(upd, (TaskUpdate, Exception))
    if isinstance(upd, TaskUpdate):
        assert upd.progress is None or 0.0 <= upd.progress <= 1.0


@FUZZ
@given(name=st.sampled_from(("status", "progress", "preview", "message")) | st.text(max_size=8),
       data=json_objects(comfycloud, comfycloud_wire) | wire_json(comfycloud))
def test_comfycloud_stream_events(name, data):
    upd = clear(comfycloud._event_update, sse.Event("event", name, data))
    assert upd is None or isinstance(upd, (TaskUpdate, Exception))


@FUZZ
@given(frames=st.lists(st.builds(Frame, st.just("json"), json_objects(comfy_native, comfy_progress) | scalars)
                       | st.builds(Frame, st.just("binary"), st.binary(max_size=24)
                                   | st.binary(max_size=16).map(lambda b: b"\x00\x00\x00\x01\x00\x00\x00\x01" + b))
                       | st.builds(Frame, st.sampled_from(("connected", "disconnected"))), max_size=6))
async def test_comfyui_socket_frames(frames):
    srv = ComfyServer(provider=None, client_id="fuzz")
    srv.followed["p1"] = Followed("p1", None)  # followed without opening a socket
    for fr in frames:
        clear(srv._on_frame, fr)
    assert isinstance(clear(srv.followed["p1"].progress.update), (TaskUpdate, Exception))


def test_a_workflow_file_that_is_not_utf8_is_named(sandbox):
    home, profile = sandbox
    (home / "workflows" / "latin.json").write_bytes('{"1": {"class_type": "Caf\xe9"}}'.encode("latin-1"))
    err = clear(workflows.resolve_workflow, "latin.json", profile, home, None)
    assert isinstance(err, Exception) and "latin.json" in str(err) and "UTF-8" in str(err)
