"""The RunningHub provider against its fake, through the public Provider methods only: each call is
ONE step (the engine's rules decide retries and ends; they are tested in tests/contract)."""
from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.engine.rules import Create, create_outcome
from comfyui_remote.engine.transfer import Expired, Http, RetryPolicy
from comfyui_remote.providers import runninghub_parse as rp
from comfyui_remote.providers.base import (AnswerLost, AuthError, CancelResult, CapacityBusy, ConfigError,
                                           ContentRejected, NotFound, NotSupported, Override, ProtocolError,
                                           QuotaError, RateLimited, RejectedInput, RemoteError, RemoteFailure,
                                           RemoteRef, ServerError, State, SubmitSpec, TaskGone, TaskUpdate)
from comfyui_remote.providers.runninghub import RunningHubProvider
from comfyui_remote.tests.fakes import runninghub_workflows as wf
from comfyui_remote.tests.fakes.runninghub import FakeRunningHub
from comfyui_remote.tests.fakes.toolkit import png_bytes

from . import drive

CANARY = "rh-canary-7f3a9c1e5d2b4a6f8e0c"


@pytest.fixture
async def fake():
    f = FakeRunningHub(api_key=CANARY)
    f.queue_s, f.run_s, f.output_lag_s, f.ws_close_after_s, f.slow_run_s = 0.15, 0.35, 0.05, 0.05, 20.0
    await f.start()
    yield f
    await f.stop()


@pytest.fixture
async def make(tmp_path: Path, fake: FakeRunningHub):
    https: list[Http] = []

    def _make(key: str = CANARY, **fields: Any) -> RunningHubProvider:
        home = tmp_path / f"home{len(https)}"
        home.mkdir()
        table = {"provider": "runninghub", "url": fake.url, "api_key": key, "poll_interval_s": 0.02, **fields}
        lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        (home / "profiles.toml").write_text("[profiles.rh]\n" + "\n".join(lines) + "\n")
        http = Http(provider="runninghub", profile="rh", policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05))
        https.append(http)
        return RunningHubProvider(Profiles(home).get("rh"), http)

    yield _make
    for h in https:
        await h.close()


def spec(workflow: str, *overrides: tuple) -> SubmitSpec:
    return SubmitSpec(workflow, tuple(Override(t, k, v) for k, t, v in overrides), profile="rh")


async def fetch(p: RunningHubProvider, url: str, tmp_path: Path) -> bytes:
    got = await p.http.fetch_to(url, tmp_path / f"dl{len(list(tmp_path.iterdir()))}.part")
    return got.path.read_bytes()


async def live(p: RunningHubProvider, ref: RemoteRef) -> list[TaskUpdate]:
    """Every update of the task's push channel, until it ends."""
    stream = p.push(ref)
    assert stream is not None
    return [u async for u in stream]


def no_canary(*texts: Any) -> None:
    for t in texts:
        assert CANARY not in (t if isinstance(t, str) else json.dumps(t, default=str))


# ---------------------------------------------------------------- success paths

async def test_success_queue_then_running_then_outputs_with_pixels(make, fake, tmp_path):
    fake.queue_s = 0.6  # margin: the first poll must still see the queue on a loaded machine
    p = make()
    s = spec(wf.WF_SOLID, ("text", "6.text", "a red fox"), ("int", "3.seed", 2 ** 64 - 1))
    pre = await p.validate(s)
    assert pre.workflow_label and wf.WF_SOLID in pre.workflow_label
    ref = await p.submit(s, p.new_submission_key())
    assert isinstance(ref.remote_id, str) and len(ref.remote_id) == 19 and ref.remote_id in fake.tasks
    assert ref.console_url == f"{fake.url}/call-api/call-record-detail/{ref.remote_id}"
    json.dumps(ref.data)
    no_canary(ref.data, ref.console_url)
    assert fake.count("create") == 1  # ONE create, never re-sent by the provider
    updates = await drive.until_end(p, ref)
    states = [u.state for u in updates]
    assert states[0] == State.QUEUED and State.RUNNING in states and states[-1] == State.SUCCEEDED
    assert updates[0].raw_state == "813 APIKEY_TASK_IS_QUEUED" and updates[0].queue_position is None
    last = updates[-1]
    assert last.cost == 17 and last.progress == 1.0 and len(last.outputs) == 1 and "17 coins" in last.message
    out = last.outputs[0]
    assert (out.kind, out.node, out.mime) == ("image", "9", "image/png")
    body = json.loads(fake.requests("create")[0].body)
    assert body["nodeInfoList"] == [{"nodeId": "6", "fieldName": "text", "fieldValue": "a red fox"},
                                    {"nodeId": "3", "fieldName": "seed", "fieldValue": str(2 ** 64 - 1)}]
    img = Image.open(io.BytesIO(await fetch(p, out.url, tmp_path)))
    assert img.size == (64, 48) and img.getpixel((0, 0)) == wf.solid_colour("a red fox|", 2 ** 64 - 1)
    again = await p.outputs(ref)
    assert [(o.node, o.filename) for o in again] == [(out.node, out.filename)]


async def test_push_follows_the_task_socket_and_never_ends_the_task(make, fake):
    fake.queue_s, fake.run_s = 0.0, 0.6  # running at once: create answers the netWssUrl
    p = make()
    ref = await drive.submit(p, spec(wf.WF_SOLID))
    assert "netWssUrl" not in json.dumps(ref.data) and "Rh-Comfy-Auth" not in json.dumps(ref.data)
    ups = await live(p, ref)
    assert all(u.state == State.RUNNING for u in ups[:-1])
    assert ups[-1].state == State.SUCCEEDED and ups[-1].outputs is None  # a hint: outputs come from the poll
    assert any(u.node == "KSampler #3" and u.max_steps == 4 and u.step for u in ups)
    progress = [u.progress for u in ups[:-1] if u.progress is not None]
    assert progress == sorted(progress) and 0 < progress[-1] < 1
    assert p.push(ref) is None  # that socket is done: no new one per poll
    assert (await drive.until_end(p, ref))[-1].state == State.SUCCEEDED


async def test_multi_outputs(make, fake, tmp_path):
    p = make()
    ref, updates = await drive.run(p, spec(wf.WF_MULTI))
    outs = updates[-1].outputs
    assert sorted(o.node for o in outs) == ["19", "9", "9"] and len({o.url for o in outs}) == 3
    for o in outs:
        colour = Image.open(io.BytesIO(await fetch(p, o.url, tmp_path))).getpixel((1, 1))
        assert colour == (wf.solid_colour("a red panda|", 669816362794144) if o.node == "9"
                          else wf.solid_colour("|a blue whale", 7))  # texts in node-id order: 7 "", 16


async def test_upload_round_trip_v2(make, fake, tmp_path):
    p = make()
    data = png_bytes((12, 34, 56), (7, 5), alpha=200)
    name = await p.upload(data, "image/png", "abc.png")
    assert name.startswith("openapi/") and fake.count("upload") == 1 and fake.count("upload_legacy") == 0
    assert 3600 <= p.upload_ttl_s < 86400  # the service keeps uploads one day
    ref, updates = await drive.run(p, spec(wf.WF_ECHO, ("image", "10.image", name)))
    assert await fetch(p, updates[-1].outputs[0].url, tmp_path) == data


async def test_upload_uses_legacy_route_only_where_v2_is_missing(make, fake):
    p = make()
    fake.v2_upload_enabled = False
    name = await p.upload(png_bytes((1, 1, 1), (3, 3)), "image/png", "x.png")
    assert name.startswith("api/") and fake.count("upload_legacy") == 1
    big = b"\0" * (30 * 1024 * 1024 + 1)
    before = fake.count("upload") + fake.count("upload_legacy")
    with pytest.raises(RejectedInput) as e:
        await p.upload(big, "image/png", "big.png")
    assert "30 MB" in str(e.value) and e.value.field == "image"
    with pytest.raises(RejectedInput):
        await p.validate(SubmitSpec(wf.WF_ECHO, (Override("10.image", "image", big),)))
    assert fake.count("upload") + fake.count("upload_legacy") == before


async def test_upload_5xx_is_the_transports_to_retry_not_a_fallback(make, fake):
    p = make()
    fake.faults.add("upload", "status", status=502, times=2)
    assert (await p.upload(png_bytes((2, 2, 2), (3, 3)), "image/png", "y.png")).startswith("openapi/")
    assert fake.count("upload") == 3 and fake.count("upload_legacy") == 0
    with pytest.raises(AuthError):
        await make(key="rh-wrong-0000").upload(png_bytes(), "image/png", "a.png")


async def test_own_graph_on_base_workflow(make, fake, tmp_path):
    fake.queue_s = 0.0
    p = make(base_workflow_id=wf.WF_SOLID)
    graph = json.dumps(wf.WORKFLOWS[wf.WF_SOLID]["graph"])
    ref = await drive.submit(p, spec(graph, ("text", "6.text", "my own graph")))
    body = json.loads(fake.requests("create")[0].body)
    assert body["workflowId"] == wf.WF_SOLID and body["nodeInfoList"] == []
    assert json.loads(body["workflow"])["6"]["inputs"]["text"] == "my own graph"
    assert any(u.node == "KSampler #3" for u in await live(p, ref))  # names from the graph itself
    assert fake.count("workflow_json") == 0
    updates = await drive.until_end(p, ref)
    img = Image.open(io.BytesIO(await fetch(p, updates[-1].outputs[0].url, tmp_path)))
    assert img.getpixel((0, 0)) == wf.solid_colour("my own graph|", 669816362794144)


async def test_own_graph_needs_base_workflow_id_and_api_format(make):
    p = make()
    graph = json.dumps(wf.WORKFLOWS[wf.WF_SOLID]["graph"])
    with pytest.raises(ConfigError) as e:
        await p.validate(spec(graph))
    assert "RUNNINGHUB_BASE_WORKFLOW_ID" in str(e.value)
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(json.dumps({"nodes": [], "links": []})))
    assert "API" in str(e.value)


async def test_ai_app(make, fake):
    fake.queue_s = 0.0
    p = make()
    s = spec(f"app:{wf.APP_KONTEXT}", ("text", "52.prompt", "short hair"))
    assert "Flux Kontext" in ((await p.validate(s)).workflow_label or "")
    ref = await p.submit(s, "k")
    body = json.loads(fake.requests("app_run")[0].body)
    assert body["webappId"] == int(wf.APP_KONTEXT)
    assert body["nodeInfoList"] == [{"nodeId": "52", "fieldName": "prompt", "fieldValue": "short hair"}]
    ups = await live(p, ref)
    assert any(u.node == "RH_ComfyFluxKontext #37" for u in ups)
    assert all(u.progress is None for u in ups)  # an app publishes only its fields: no node count
    updates = await drive.until_end(p, ref)
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs[0].node == "60"
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(f"app:{wf.APP_KONTEXT}", ("text", "52.text", "x")))
    assert "52.prompt" in str(e.value)
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(f"app:{wf.APP_NOT_RUN}", ("text", "52.prompt", "x")))
    assert "run the app once" in str(e.value)


async def test_profile_options_reach_create(make, fake):
    p = make(instance_type="plus", use_personal_queue="true")
    await drive.run(p, spec(wf.WF_SOLID))
    body = json.loads(fake.requests("create")[0].body)
    assert body["instanceType"] == "plus" and body["usePersonalQueue"] is True
    with pytest.raises(ConfigError) as e:
        await make(instance_type="huge").submit(spec(wf.WF_SOLID), "k")
    assert e.value.field == "instance_type" and fake.count("create") == 1


async def test_success_without_files(make, fake):
    ref, updates = await drive.run(make(), spec(wf.WF_PREVIEW))
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs == []
    assert "saved no files" in updates[-1].message


async def test_outputs_lag_and_the_code0_running_variant_read_as_running(make, fake):
    fake.output_lag_s = 0.3
    fake.running_code0 = True
    ref, updates = await drive.run(make(), spec(wf.WF_SOLID))
    assert updates[-1].state == State.SUCCEEDED and len(updates[-1].outputs) == 1
    assert any(u.raw_state == "0 APIKEY_TASK_IS_RUNNING" and u.state == State.RUNNING for u in updates)


async def test_code0_without_a_list_is_status_unavailable_not_an_end(make, fake):
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.faults.add("outputs", "status", status=200, body={"code": 0, "msg": "success", "data": None})
    with pytest.raises(ProtocolError):
        await p.poll(ref)
    assert (await drive.until_end(p, ref))[-1].state == State.SUCCEEDED


async def test_a_new_process_follows_a_task_from_ref_data_alone(make, fake):
    fake.queue_s, fake.run_s = 0.0, 1.0
    ref = await make().submit(spec(wf.WF_SOLID), "k1")
    saved = json.loads(json.dumps({"remote_id": ref.remote_id, "data": ref.data}))
    p2 = make()  # a restart: no memory of the task, no socket URL
    ref2 = RemoteRef(saved["remote_id"], saved["data"])
    assert p2.push(ref2) is None
    assert (await p2.poll(ref2)).state == State.RUNNING
    assert p2.push(ref2) is not None  # the 804 answer carried the socket URL again
    assert (await drive.until_end(p2, ref2))[-1].state == State.SUCCEEDED
    again = await drive.until_end(make(), RemoteRef(saved["remote_id"], saved["data"]))
    assert len(again) == 1 and again[0].state == State.SUCCEEDED


async def test_never_sets_host_header(make, fake):
    await drive.run(make(), spec(wf.WF_SOLID))
    for seen in fake.requests():
        assert seen.headers.get("Host") == f"127.0.0.1:{fake.port}"


async def test_check_shows_balance(make, fake):
    msg = await make().check()
    assert "99999 coins" in msg and "999 CNY" in msg
    no_canary(msg)


# ---------------------------------------------------------------- cancel

async def test_cancel_running_task(make, fake):
    fake.queue_s = 0.0
    p = make()
    ref = await p.submit(spec(wf.WF_SLOW), "k")
    assert (await p.poll(ref)).state == State.RUNNING
    assert await p.cancel(ref) is CancelResult.REQUESTED
    assert fake.count("cancel") == 1 and fake.tasks[ref.remote_id].cancelled
    ref.data["cancel_requested"] = True  # what the engine records
    upd = await p.poll(ref)
    assert upd.state == State.CANCELLED and upd.error is None
    fresh = await make().poll(RemoteRef(ref.remote_id, json.loads(json.dumps(ref.data))))  # after a restart
    assert fresh.state == State.CANCELLED
    with pytest.raises(TaskGone):
        await p.cancel(RemoteRef("1234567890123456789"))


async def test_cancel_after_the_end_is_answered_0_and_the_poll_keeps_the_result(make, fake):
    p = make()
    ref, updates = await drive.run(p, spec(wf.WF_SOLID))
    assert await p.cancel(ref) is CancelResult.REQUESTED  # RunningHub answers 0 either way (INFERRED)
    ref.data["cancel_requested"] = True
    assert (await p.poll(ref)).state == State.SUCCEEDED and not fake.tasks[ref.remote_id].cancelled


async def test_cancel_on_the_website_reads_as_failure_without_reason(make, fake):
    fake.run_s = 20.0
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.tasks[ref.remote_id].cancelled = True  # someone cancelled it on the website
    fake.tasks[ref.remote_id].status = "FAILED"
    upd = await p.poll(ref)
    assert upd.state == State.FAILED and "cancelled on the" in str(upd.error)


# ---------------------------------------------------------------- refusals

async def test_auth_failure_message(make, fake):
    wrong = "rh-wrong-key-3c1b7e9d"
    p = make(key=wrong)
    for call in (p.check(), p.validate(spec(wf.WF_SOLID)), p.submit(spec(wf.WF_SOLID), "k")):
        with pytest.raises(AuthError) as e:
            await call
        text = str(e.value)
        assert "runninghub/rh" in text and "api_key" in text and "profiles.toml" in text and wrong not in text
    assert fake.created_count() == 0


async def test_missing_key_names_where_to_set_it(tmp_path, fake):
    (tmp_path / "profiles.toml").write_text(f'[profiles.rh]\nprovider = "runninghub"\nurl = "{fake.url}"\n')
    p = RunningHubProvider(Profiles(tmp_path).get("rh"), Http())
    with pytest.raises(ConfigError) as e:
        await p.check()
    assert "api_key" in str(e.value)


@pytest.mark.parametrize("target, words", [
    ("99.text", "no node '99'"), ("6.nope", "has no input 'nope'"), ("3.positive", "linked"), ("6", "NODE_ID.FIELD"),
])
async def test_bad_target_rejected_before_paying(make, fake, target, words):
    with pytest.raises(RejectedInput) as e:
        await make().validate(spec(wf.WF_SOLID, ("text", target, "x")))
    assert words in str(e.value) and e.value.field == "target"
    assert fake.created_count() == 0


@pytest.mark.parametrize("workflow, cls, words", [
    ("", RejectedInput, "empty"), ("hello", RejectedInput, "not a RunningHub workflow id"),
    ("app:xyz", RejectedInput, "app:<webappId>"), ("123", NotFound, "380"), ("app:42", NotFound, "901"),
])
async def test_bad_workflow_messages(make, workflow, cls, words):
    with pytest.raises(cls) as e:
        await make().validate(spec(workflow))
    assert words in str(e.value)


async def test_workflow_url_is_accepted(make):
    pre = await make().validate(spec(f"https://www.runninghub.ai/post/{wf.WF_SOLID}"))
    assert wf.WF_SOLID in pre.workflow_label


@pytest.mark.parametrize("setup, cls, words", [
    (lambda f: f.validate_fail_next(), RejectedInput, "CheckpointLoaderSimple#4"),
    (lambda f: f.keys[CANARY].update(balance=False), QuotaError, "insufficient balance"),
    (lambda f: f.keys[CANARY].update(free=True), AuthError, "free accounts"),
])
async def test_create_errors_from_the_fake(make, fake, setup, cls, words):
    setup(fake)
    with pytest.raises(cls) as e:
        await make().submit(spec(wf.WF_SOLID), "k")
    assert words in str(e.value) and create_outcome(e.value) is Create.REFUSED
    assert fake.created_count() == 0 and fake.count("create") == 1


async def test_not_runnable_workflow_and_node_info_mismatch(make, fake):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(wf.WF_NOT_RUN), "k")
    assert "run it once" in str(e.value)
    with pytest.raises(RejectedInput) as e:  # without validate: the service's 803
        await p.submit(spec(wf.WF_SOLID, ("text", "99.text", "x")), "k")
    assert "803" in str(e.value) and e.value.field == "target"


# every create answer code → the error class it means, and what the engine then does with the create
CREATE_CODES = [
    (301, RejectedInput, Create.REFUSED), (380, NotFound, Create.REFUSED), (412, ConfigError, Create.REFUSED),
    (415, CapacityBusy, Create.WAIT), (416, QuotaError, Create.REFUSED), (421, CapacityBusy, Create.WAIT),
    (435, ConfigError, Create.REFUSED), (436, AuthError, Create.REFUSED), (801, AuthError, Create.REFUSED),
    (802, AuthError, Create.REFUSED), (803, RejectedInput, Create.REFUSED), (806, AuthError, Create.REFUSED),
    (810, RejectedInput, Create.REFUSED), (811, AuthError, Create.REFUSED), (812, QuotaError, Create.REFUSED),
    (814, CapacityBusy, Create.WAIT), (901, NotFound, Create.REFUSED), (1003, RateLimited, Create.WAIT),
    (1011, CapacityBusy, Create.WAIT), (1520, CapacityBusy, Create.WAIT),
    (500, ServerError, Create.AMBIGUOUS), (1, ProtocolError, Create.AMBIGUOUS), (4242, ProtocolError, Create.AMBIGUOUS),
]


@pytest.mark.parametrize("code, cls, outcome", CREATE_CODES)
async def test_every_create_code_maps_to_its_error(make, fake, code, cls, outcome):
    fake.faults.add("create", "status", status=200, body={"code": code, "msg": f"MSG_{code}", "data": None})
    with pytest.raises(cls) as e:
        await make().submit(spec(wf.WF_SOLID), "k")
    assert type(e.value) is cls and create_outcome(e.value) is outcome
    assert str(code) in str(e.value) and "runninghub/rh" in str(e.value)
    assert fake.count("create") == 1  # the provider never re-sends a create
    no_canary(str(e.value))


async def test_capacity_busy_then_success(make, fake):
    fake.run_s = 20.0
    fake.concurrency_limit = 1
    p = make()
    first = await p.submit(spec(wf.WF_SOLID), "a")
    with pytest.raises(CapacityBusy) as e:
        await p.submit(spec(wf.WF_SOLID), "b")
    assert "421" in str(e.value) and e.value.retryable and fake.created_count() == 1
    fake.keys[CANARY]["type"] = "EXCLUSIVE"
    with pytest.raises(CapacityBusy) as e:
        await p.submit(spec(wf.WF_SOLID), "c")
    assert "415" in str(e.value) and "use_personal_queue" in str(e.value)
    await p.cancel(first)
    ref = await p.submit(spec(wf.WF_SOLID), "d")
    assert fake.created_count() == 2 and ref.remote_id != first.remote_id and fake.count("create") == 4


async def test_personal_queue_queues_instead_of_415(make, fake):
    fake.run_s = 0.3
    fake.concurrency_limit = 1
    fake.keys[CANARY]["type"] = "EXCLUSIVE"
    p = make(use_personal_queue=True)
    a = await p.submit(spec(wf.WF_SOLID), "a")
    b = await p.submit(spec(wf.WF_SOLID), "b")
    ups = await drive.until_end(p, b)
    assert ups[0].state == State.QUEUED and ups[-1].state == State.SUCCEEDED
    assert (await drive.until_end(p, a))[-1].state == State.SUCCEEDED


# ---------------------------------------------------------------- remote failures

async def test_node_error_names_remote_node(make, fake):
    fake.fail_next(exception_type="TypeError", message="sampler_main() missing 2 required positional arguments")
    p = make()
    ref, ups = await drive.run(p, spec(wf.WF_SOLID))
    last = ups[-1]
    assert last.state == State.FAILED and isinstance(last.error, RemoteFailure)
    assert last.error.remote_node == "3" and last.error.node_class == "KSampler"
    text = str(last.error)
    assert "remote node 3 (KSampler)" in text and "TypeError" in text and "missing 2 required" in text
    no_canary(text, last.message)
    with pytest.raises(RemoteError):
        await p.outputs(ref)


async def test_out_of_memory_hint(make, fake):
    fake.fail_next()
    ref, ups = await drive.run(make(), spec(wf.WF_SOLID))
    assert "plus" in str(ups[-1].error)


async def test_content_safety_from_the_v2_query(make, fake):
    fake.content_safety_next()
    ref, ups = await drive.run(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.FAILED and isinstance(ups[-1].error, ContentRejected)
    assert "1501" in str(ups[-1].error) and fake.count("query") == 1


async def test_v2_query_failing_leaves_the_plain_failure(make, fake):
    fake.fail_next(exception_type="TypeError", message="boom")
    fake.faults.add("query", "status", status=503)
    ref, ups = await drive.run(make(), spec(wf.WF_SOLID))
    assert isinstance(ups[-1].error, RemoteFailure) and fake.count("query") == 1  # one try, best effort


async def test_unknown_task_is_task_gone_for_the_engine_to_confirm(make, fake):
    p = make()
    with pytest.raises(TaskGone) as e:
        await p.poll(RemoteRef("1234567890123456789", {"workflow_id": wf.WF_SOLID}))
    assert "807" in str(e.value) and fake.count("outputs") == 1


# ---------------------------------------------------------------- faults

async def test_submit_5xx_is_ambiguous_sent_once_and_find_cannot_tell(make, fake):
    p = make()
    fake.faults.add("create", "status", status=503)
    s = spec(wf.WF_SOLID)
    with pytest.raises(ServerError) as e:
        await p.submit(s, "key1")
    assert create_outcome(e.value) is Create.AMBIGUOUS and fake.count("create") == 1
    with pytest.raises(NotSupported):
        await p.find("key1", s)
    assert not p.capabilities.can_find


async def test_submit_drop_after_is_an_answer_lost_never_resent(make, fake):
    fake.run_s = 5.0
    p = make()
    fake.faults.add("create", "drop_after")
    with pytest.raises(AnswerLost) as e:
        await p.submit(spec(wf.WF_SOLID), "key2")
    no_canary(str(e.value))
    assert fake.created_count() == 1 and fake.count("create") == 1
    with pytest.raises(NotSupported):
        await p.find("key2", spec(wf.WF_SOLID))
    assert fake.created_count() == 1


@pytest.mark.parametrize("fault, cls", [(dict(kind="malformed"), ProtocolError),
                                        (dict(kind="status", status=401, body={"error": "proxy says no"}), AuthError),
                                        (dict(kind="status", status=404, body={"error": "no route"}), NotFound)])
async def test_a_bad_poll_answer_raises_and_the_next_one_works(make, fake, fault, cls):
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.faults.add("outputs", **fault)
    with pytest.raises(cls) as e:
        await p.poll(ref)
    assert not isinstance(e.value, TaskGone)  # a proxy's 404 is not the service saying "no such task"
    assert (await drive.until_end(p, ref))[-1].state == State.SUCCEEDED and fake.created_count() == 1


async def test_ws_drop_mid_run_reconnects_and_keeps_progress(make, fake):
    fake.queue_s, fake.run_s = 0.0, 1.0
    fake.faults.add("ws", "ws_drop", after=5)
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    ups = await live(p, ref)
    assert fake.count("ws") == 2 and any(u.step for u in ups) and ups[-1].state == State.SUCCEEDED


@pytest.mark.parametrize("knob", ["ws_refuse", "ws_silent"])
async def test_socket_refused_or_silent_leaves_polling_to_finish(make, fake, knob):
    setattr(fake, knob, True)
    fake.queue_s = 0.0
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    stream = p.push(ref)
    reader = asyncio.ensure_future(asyncio.wait_for(_drain(stream), 30))
    ups = await drive.until_end(p, ref)
    assert ups[-1].state == State.SUCCEEDED and len(ups[-1].outputs) == 1
    assert all(not u.state.terminal for u in await reader)
    if knob == "ws_refuse":
        assert fake.count("ws") == 1  # a refused token is final: no reconnects


async def _drain(stream: Any) -> list:
    return [u async for u in stream]


async def test_expired_links_answer_403_and_outputs_gives_fresh_ones(make, fake, tmp_path):
    p = make()
    ref, ups = await drive.run(p, spec(wf.WF_SOLID))
    old = ups[-1].outputs[0]
    fake.expire_urls(stale_next=0)
    with pytest.raises(Expired) as e:
        await fetch(p, old.url, tmp_path)
    assert e.value.code == 403
    fresh = (await p.outputs(ref))[0]
    assert fresh.url != old.url and (fresh.node, fresh.filename) == (old.node, old.filename)
    assert (await fetch(p, fresh.url, tmp_path)).startswith(b"\x89PNG")


# ---------------------------------------------------------------- canary, capabilities, parsers

async def test_canary_key_never_leaks(make, fake):
    p = make()
    errors: list[RemoteError] = []
    fake.fail_next()
    ref, ups = await drive.run(p, spec(wf.WF_SOLID))
    errors.append(ups[-1].error)
    for code, _, _ in CREATE_CODES:
        fake.faults.add("create", "status", status=200, body={"code": code, "msg": "x", "data": None})
        with pytest.raises(RemoteError) as e:
            await p.submit(spec(wf.WF_SOLID), "k")
        errors.append(e.value)
    fake.faults.add("create", "drop_after")
    fake.faults.add("outputs", "malformed")
    for call in (p.submit(spec(wf.WF_SOLID), "k"), p.validate(spec("99999")), p.cancel(RemoteRef("1")),
                 p.poll(ref), p.find("k", spec(wf.WF_SOLID))):
        with pytest.raises(RemoteError) as e:
            await call
        errors.append(e.value)
    assert len(errors) > 20
    for err in errors:
        no_canary(str(err), err.to_json(), err.hint, err.detail)
    no_canary(ref.data, [u.message for u in ups], [o.to_json() for o in ups[-1].outputs or []])


def test_capabilities():
    caps = RunningHubProvider.capabilities
    assert caps.cancel and caps.progress == "push" and caps.uploads and caps.addressing == "node" and caps.cost
    assert not (caps.idempotent_submit or caps.client_chosen_id or caps.findable or caps.queue_position)


@pytest.mark.parametrize("answer", [
    {"code": "804", "msg": None, "data": []}, {"code": 805, "data": "x"}, {"code": 805, "data": {"failedReason": "oops"}},
    {"code": 0, "msg": "success", "data": [1, None, {"fileUrl": 5}, {"fileUrl": "https://h/x", "nodeId": [1]}]},
    {"code": 0, "msg": "success", "data": {"netWssUrl": 3}}, [], "text", {"code": None}, {"msg": "APIKEY_TASK_IS_QUEUED"},
    {"code": 804, "data": {"netWssUrl": ["x"]}}, {"code": True, "msg": "success", "data": []},
])
async def test_odd_outputs_answers_are_an_update_or_our_error(make, fake, answer):
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.faults.add("outputs", "status", status=200, body=answer)
    try:
        upd = await p.poll(ref)
    except RemoteError:
        return
    assert isinstance(upd, TaskUpdate) and (upd.state.terminal or upd.outputs is None)
    stream = p.push(ref)  # a socket URL only when the answer carried a usable one
    assert stream is None or fake.count("ws") == 0
    if stream is not None:
        await stream.aclose()


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                     max_leaves=12)
_item = st.dictionaries(st.sampled_from(["fileUrl", "url", "fileType", "outputType", "nodeId", "text",
                                         "consumeCoins", "taskCostTime"]), _json | st.just("https://h/a.png"),
                        max_size=6)


class _P:
    id, name = "runninghub", "rh"

    def error(self, cls: type, detail: str, **kw: Any) -> RemoteError:
        return cls(detail, provider=self.id, profile=self.name, **kw)


@settings(max_examples=200, deadline=None)
@given(st.lists(_item | _json, max_size=6), _json, _json)
def test_answer_parsers_never_raise(items, reason, data):
    upd = rp.succeeded(items, "0 success")
    assert upd.state == State.SUCCEEDED and all(o.url or o.text for o in upd.outputs)
    assert len({o.url for o in upd.outputs if o.url}) == len([o for o in upd.outputs if o.url])
    assert upd.cost is None or upd.cost == upd.cost
    err = rp.failure(_P(), rp.reason_of({"failedReason": reason}))
    assert isinstance(err, RemoteFailure)
    assert isinstance(rp.validation_error(_P(), 433, "VALIDATE_PROMPT_FAILED", data), RejectedInput)
    assert isinstance(rp.validation_error(_P(), 433, "x", {"promptTips": json.dumps(data)}), RejectedInput)
