"""The RunningHub provider against its fake, through the public Provider methods only."""
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
from comfyui_remote.engine.transfer import Http, RetryPolicy
from comfyui_remote.providers import base
from comfyui_remote.providers.base import (AmbiguousSubmit, AuthError, CapacityBusy, ConfigError, ContentRejected,
                                           NotFound, NotSupported, Override, ProtocolError, QuotaError, RejectedInput,
                                           RemoteError, RemoteFailure, RemoteRef, State, SubmitSpec, TransientError)
from comfyui_remote.providers.runninghub import RunningHubProvider, _Progress
from comfyui_remote.tests.fakes import runninghub_workflows as wf
from comfyui_remote.tests.fakes.runninghub import FakeRunningHub
from comfyui_remote.tests.fakes.toolkit import png_bytes

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
    n = 0

    def _make(key: str = CANARY, **fields: Any) -> RunningHubProvider:
        nonlocal n
        n += 1
        home = tmp_path / f"home{n}"
        home.mkdir()
        table = {"provider": "runninghub", "url": fake.url, "api_key": key, "poll_interval_s": 0.05, **fields}
        lines = [f"{k} = {json.dumps(v)}" for k, v in table.items()]
        (home / "profiles.toml").write_text("[profiles.rh]\n" + "\n".join(lines) + "\n")
        profile = Profiles(home).get("rh")
        http = Http(provider="runninghub", profile="rh", policy=RetryPolicy(attempts=4, base_s=0.01, cap_s=0.05))
        https.append(http)
        return RunningHubProvider(profile, http)

    yield _make
    for h in https:
        await h.close()


async def collect(p: RunningHubProvider, ref: RemoteRef, on_update: Any = None) -> list:
    updates = []

    async def run() -> None:
        async for u in p.watch(ref):
            updates.append(u)
            if on_update is not None:
                await on_update(u)

    await asyncio.wait_for(run(), 30)
    assert updates and updates[-1].state.terminal
    assert all(not u.state.terminal for u in updates[:-1])
    return updates


async def fetch_png(p: RunningHubProvider, url: str, tmp_path: Path) -> Image.Image:
    d = await p.http.download(url, tmp_path / url.rsplit("/", 1)[-1])
    return Image.open(io.BytesIO(d.path.read_bytes()))


def spec(workflow: str, *overrides: tuple) -> SubmitSpec:
    return SubmitSpec(workflow, tuple(Override(t, k, v) for k, t, v in overrides), profile="rh")


async def run_task(p: RunningHubProvider, s: SubmitSpec) -> tuple[RemoteRef, list]:
    await p.validate(s)
    ref = await p.submit(s, p.new_submission_key())
    return ref, await collect(p, ref)


def no_canary(*texts: Any) -> None:
    for t in texts:
        assert CANARY not in (t if isinstance(t, str) else json.dumps(t, default=str))


# ---------------------------------------------------------------- success paths

async def test_success_with_queue_progress_and_pixels(make, fake, tmp_path):
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
    updates = await collect(p, ref)
    states = [u.state for u in updates]
    assert states[0] == State.QUEUED and State.RUNNING in states and states[-1] == State.SUCCEEDED
    assert any(u.node == "KSampler #3" and u.max_steps == 4 and u.step for u in updates)
    progress = [u.progress for u in updates if u.progress is not None]
    assert progress == sorted(progress) and 0 < progress[-2] < 1 and progress[-1] == 1.0
    last = updates[-1]
    assert last.cost == 17 and len(last.outputs) == 1
    out = last.outputs[0]
    assert (out.kind, out.node, out.mime) == ("image", "9", "image/png")
    body = json.loads(fake.requests("create")[0].body)
    assert body["nodeInfoList"] == [{"nodeId": "6", "fieldName": "text", "fieldValue": "a red fox"},
                                    {"nodeId": "3", "fieldName": "seed", "fieldValue": str(2 ** 64 - 1)}]
    img = await fetch_png(p, out.url, tmp_path)
    assert img.size == (64, 48)
    assert img.getpixel((0, 0)) == wf.solid_colour("a red fox|", 2 ** 64 - 1)
    assert [o.url for o in await p.outputs(ref)] == [out.url]


async def test_multi_outputs(make, fake, tmp_path):
    p = make()
    ref, updates = await run_task(p, spec(wf.WF_MULTI))
    outs = updates[-1].outputs
    assert sorted(o.node for o in outs) == ["19", "9", "9"] and len({o.url for o in outs}) == 3
    for o in outs:
        colour = (await fetch_png(p, o.url, tmp_path)).getpixel((1, 1))
        assert colour == (wf.solid_colour("a red panda|", 669816362794144) if o.node == "9"
                          else wf.solid_colour("|a blue whale", 7))  # texts in node-id order: 7 "", 16


async def test_upload_round_trip_v2(make, fake, tmp_path):
    p = make()
    data = png_bytes((12, 34, 56), (7, 5), alpha=200)
    name = await p.upload(data, "image/png", "abc.png")
    assert name.startswith("openapi/") and fake.count("upload") == 1 and fake.count("upload_legacy") == 0
    ref, updates = await run_task(p, spec(wf.WF_ECHO, ("image", "10.image", name)))
    out = updates[-1].outputs[0]
    d = await p.http.download(out.url, tmp_path / "echo.png")
    assert d.path.read_bytes() == data


async def test_upload_falls_back_to_legacy_and_size_cap_before_upload(make, fake):
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


async def test_upload_v2_server_error_falls_back(make, fake):
    p = make()
    fake.faults.add("upload", "status", status=502, times=-1)
    name = await p.upload(png_bytes((2, 2, 2), (3, 3)), "image/png", "y.png")
    assert name.startswith("api/")


async def test_own_graph_on_base_workflow(make, fake, tmp_path):
    p = make(base_workflow_id=wf.WF_SOLID)
    graph = json.dumps(wf.WORKFLOWS[wf.WF_SOLID]["graph"])
    s = spec(graph, ("text", "6.text", "my own graph"))
    ref, updates = await run_task(p, s)
    body = json.loads(fake.requests("create")[0].body)
    assert body["workflowId"] == wf.WF_SOLID and body["nodeInfoList"] == []
    assert json.loads(body["workflow"])["6"]["inputs"]["text"] == "my own graph"
    assert any(u.node == "KSampler #3" for u in updates)  # names from the graph itself
    img = await fetch_png(p, updates[-1].outputs[0].url, tmp_path)
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
    p = make()
    s = spec(f"app:{wf.APP_KONTEXT}", ("text", "52.prompt", "short hair"))
    pre = await p.validate(s)
    assert "Flux Kontext" in (pre.workflow_label or "")
    ref, updates = await run_task(p, s)
    body = json.loads(fake.requests("app_run")[0].body)
    assert body["webappId"] == int(wf.APP_KONTEXT)
    assert body["nodeInfoList"] == [{"nodeId": "52", "fieldName": "prompt", "fieldValue": "short hair"}]
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs[0].node == "60"
    assert any(u.node == "RH_ComfyFluxKontext #37" for u in updates)
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(f"app:{wf.APP_KONTEXT}", ("text", "52.text", "x")))
    assert "52.prompt" in str(e.value)
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(f"app:{wf.APP_NOT_RUN}", ("text", "52.prompt", "x")))
    assert "run the app once" in str(e.value)


async def test_profile_options_reach_create(make, fake):
    p = make(instance_type="plus", use_personal_queue="true")
    await run_task(p, spec(wf.WF_SOLID))
    body = json.loads(fake.requests("create")[0].body)
    assert body["instanceType"] == "plus" and body["usePersonalQueue"] is True
    bad = make(instance_type="huge")
    with pytest.raises(ConfigError) as e:
        await bad.submit(spec(wf.WF_SOLID), "k")
    assert e.value.field == "instance_type"


async def test_success_without_files(make, fake):
    p = make()
    ref, updates = await run_task(p, spec(wf.WF_PREVIEW))
    assert updates[-1].state == State.SUCCEEDED and updates[-1].outputs == []
    assert "saved no files" in updates[-1].message


async def test_outputs_lag_and_code0_running_variant(make, fake):
    p = make()
    fake.output_lag_s = 0.3
    fake.running_code0 = True
    ref, updates = await run_task(p, spec(wf.WF_SOLID))
    assert updates[-1].state == State.SUCCEEDED and len(updates[-1].outputs) == 1
    assert any(u.raw_state == "0 APIKEY_TASK_IS_RUNNING" for u in updates)


async def test_code0_without_list_asks_status(make, fake):
    fake.run_s = 0.5
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.faults.add("outputs", "status", status=200, times=2, body={"code": 0, "msg": "success", "data": None})
    ups = await collect(p, ref)
    assert ups[-1].state == State.SUCCEEDED and fake.count("status") == 2


async def test_fresh_watch_on_running_and_finished_task(make, fake):
    fake.run_s = 1.0
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k1")
    saved = json.loads(json.dumps({"remote_id": ref.remote_id, "data": ref.data}))
    p2 = make()  # a new process: no memory of the task
    ref2 = RemoteRef(saved["remote_id"], saved["data"])
    ups = await collect(p2, ref2)
    assert ups[-1].state == State.SUCCEEDED
    again = await collect(make(), RemoteRef(saved["remote_id"], saved["data"]))
    assert len(again) == 1 and again[0].state == State.SUCCEEDED


async def test_never_sets_host_header(make, fake):
    p = make()
    await run_task(p, spec(wf.WF_SOLID))
    for seen in fake.requests():
        assert seen.headers.get("Host") == f"127.0.0.1:{fake.port}"


async def test_check_shows_balance(make, fake):
    msg = await make().check()
    assert "99999 coins" in msg and "999 CNY" in msg
    no_canary(msg)


# ---------------------------------------------------------------- cancel

async def test_cancel_running_task(make, fake):
    p = make()
    ref = await p.submit(spec(wf.WF_SLOW), "k")

    async def on_update(u: base.TaskUpdate) -> None:
        if u.state == State.RUNNING and u.step and not fake.count("cancel"):
            await p.cancel(ref)

    updates = await collect(p, ref, on_update)
    assert updates[-1].state == State.CANCELLED and updates[-1].error is None
    assert fake.tasks[ref.remote_id].cancelled
    fresh = await collect(make(), RemoteRef(ref.remote_id, dict(ref.data)))  # after a restart: from ref.data
    assert fresh[-1].state == State.CANCELLED
    with pytest.raises(NotFound):
        await p.cancel(RemoteRef("1234567890123456789"))


async def test_cancel_on_the_website_reads_as_failure_without_reason(make, fake):
    fake.run_s = 20.0
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.tasks[ref.remote_id].cancelled = True  # someone cancelled it on the website
    fake.tasks[ref.remote_id].status = "FAILED"
    ups = await collect(p, ref)
    assert ups[-1].state == State.FAILED and "cancelled on the" in str(ups[-1].error)


# ---------------------------------------------------------------- errors

async def test_auth_failure_message(make, fake):
    wrong = "rh-wrong-key-3c1b7e9d"
    p = make(key=wrong)
    for call in (p.check(), p.validate(spec(wf.WF_SOLID)), p.submit(spec(wf.WF_SOLID), "k")):
        with pytest.raises(AuthError) as e:
            await call
        text = str(e.value)
        assert "runninghub/rh" in text and "api_key" in text and wrong not in text
    assert fake.created_count() == 0
    with pytest.raises(AuthError):
        await p.upload(png_bytes(), "image/png", "a.png")


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
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.validate(spec(wf.WF_SOLID, ("text", target, "x")))
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
    assert words in str(e.value)
    assert fake.created_count() == 0


async def test_not_runnable_workflow_and_node_info_mismatch(make, fake):
    p = make()
    with pytest.raises(RejectedInput) as e:
        await p.submit(spec(wf.WF_NOT_RUN), "k")
    assert "run it once" in str(e.value)
    with pytest.raises(RejectedInput) as e:  # without validate: the service's 803
        await p.submit(spec(wf.WF_SOLID, ("text", "99.text", "x")), "k")
    assert "803" in str(e.value) and e.value.field == "target"


INJECTED = [
    (1, ProtocolError), (301, RejectedInput), (412, ConfigError), (415, CapacityBusy), (416, QuotaError),
    (421, CapacityBusy), (423, NotFound), (435, ConfigError), (436, AuthError), (801, AuthError),
    (802, AuthError), (806, AuthError), (810, RejectedInput), (811, AuthError), (812, QuotaError),
    (814, CapacityBusy), (901, NotFound), (4242, ProtocolError), (500, AmbiguousSubmit),
]


@pytest.mark.parametrize("code, cls", INJECTED)
async def test_every_create_code_maps_to_its_error(make, fake, code, cls):
    fake.faults.add("create", "status", status=200, body={"code": code, "msg": f"MSG_{code}", "data": None})
    with pytest.raises(cls) as e:
        await make().submit(spec(wf.WF_SOLID), "k")
    assert str(code) in str(e.value) and "runninghub/rh" in str(e.value)
    no_canary(str(e.value))


async def test_capacity_busy_then_success(make, fake):
    fake.run_s = 20.0
    fake.concurrency_limit = 1
    p = make()
    first = await p.submit(spec(wf.WF_SOLID), "a")
    with pytest.raises(CapacityBusy) as e:
        await p.submit(spec(wf.WF_SOLID), "b")
    assert "421" in str(e.value) and e.value.retryable
    assert fake.created_count() == 1
    fake.keys[CANARY]["type"] = "EXCLUSIVE"
    with pytest.raises(CapacityBusy) as e:
        await p.submit(spec(wf.WF_SOLID), "c")
    assert "use_personal_queue" in str(e.value)
    await p.cancel(first)
    ref = await p.submit(spec(wf.WF_SOLID), "d")
    assert fake.created_count() == 2 and ref.remote_id != first.remote_id


async def test_personal_queue_queues_instead_of_415(make, fake):
    fake.run_s = 0.3
    fake.concurrency_limit = 1
    fake.keys[CANARY]["type"] = "EXCLUSIVE"
    p = make(use_personal_queue=True)
    a = await p.submit(spec(wf.WF_SOLID), "a")
    b = await p.submit(spec(wf.WF_SOLID), "b")
    ups = await collect(p, b)
    assert ups[0].state == State.QUEUED and ups[-1].state == State.SUCCEEDED
    assert (await collect(p, a))[-1].state == State.SUCCEEDED


async def test_node_error_names_remote_node(make, fake):
    fake.fail_next(exception_type="TypeError", message="sampler_main() missing 2 required positional arguments")
    p = make()
    ref, ups = await run_task(p, spec(wf.WF_SOLID))
    last = ups[-1]
    assert last.state == State.FAILED and isinstance(last.error, RemoteFailure)
    assert last.error.remote_node == "3" and last.error.node_class == "KSampler"
    text = str(last.error)
    assert "remote node 3 (KSampler)" in text and "TypeError" in text and "missing 2 required" in text
    no_canary(text, last.message)
    with pytest.raises(RemoteFailure):
        await p.outputs(ref)


async def test_out_of_memory_hint(make, fake):
    fake.fail_next()
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert "plus" in str(ups[-1].error)


async def test_content_safety(make, fake):
    fake.content_safety_next()
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.FAILED and isinstance(ups[-1].error, ContentRejected)
    assert "1501" in str(ups[-1].error)


async def test_unknown_task_fails_as_not_found(make, fake):
    ups = await collect(make(), RemoteRef("1234567890123456789", {"workflow_id": wf.WF_SOLID}))
    assert ups[-1].state == State.FAILED and isinstance(ups[-1].error, NotFound)
    assert fake.count("outputs") == 3


# ---------------------------------------------------------------- faults: nothing lost, nothing paid twice

async def test_submit_5xx_is_ambiguous_and_find_says_none(make, fake):
    p = make()
    fake.faults.add("create", "status", status=503)
    s = spec(wf.WF_SOLID)
    with pytest.raises(AmbiguousSubmit):
        await p.submit(s, "key1")
    assert fake.created_count() == 0
    assert await p.find("key1", s) is None
    await p.submit(s, "key1")
    assert fake.created_count() == 1


async def test_submit_drop_after_never_pays_twice(make, fake):
    fake.run_s = 5.0
    p = make()
    fake.faults.add("create", "drop_after")
    s = spec(wf.WF_SOLID)
    with pytest.raises(AmbiguousSubmit) as e:
        await p.submit(s, "key2")
    no_canary(str(e.value))
    assert fake.created_count() == 1
    with pytest.raises(NotSupported) as e:
        await p.find("key2", s)
    assert "probably created" in str(e.value) and "0 to 1" in str(e.value)
    assert fake.created_count() == 1
    with pytest.raises(NotSupported):
        await make().find("key2", s)  # another process knows nothing: cannot tell


async def test_find_refuses_when_other_tasks_changed_the_count(make, fake):
    fake.run_s = 5.0
    p = make()
    fake.faults.add("create", "status", status=503)
    s = spec(wf.WF_SOLID)
    with pytest.raises(AmbiguousSubmit):
        await p.submit(s, "key3")
    await p.submit(s, "other")  # one of ours started meanwhile
    with pytest.raises(NotSupported):
        await p.find("key3", s)


async def test_submit_429_is_retried_once_created(make, fake):
    fake.faults.add("create", "status", status=429, retry_after=0)
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.SUCCEEDED and fake.created_count() == 1 and fake.count("create") == 2


@pytest.mark.parametrize("fault", [
    dict(kind="status", status=502, times=2), dict(kind="malformed", times=1), dict(kind="drop", times=1),
    dict(kind="slow", delay=0.3, times=2),
])
async def test_poll_faults_are_survived(make, fake, fault):
    kind = fault.pop("kind")
    fake.faults.add("outputs", kind, **fault)
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.SUCCEEDED and len(ups[-1].outputs) == 1 and fake.created_count() == 1


async def test_persistent_poll_failure_raises_transient_for_the_engine(make, fake):
    fake.queue_s, fake.run_s = 0.0, 20.0
    p = make()
    ref = await p.submit(spec(wf.WF_SOLID), "k")
    fake.faults.add("outputs", "status", status=503, times=-1)
    with pytest.raises(TransientError):
        await collect(p, ref)
    fake.faults.clear()
    fake.tasks[ref.remote_id].end = fake.clock.now()  # let it finish now
    assert (await collect(p, ref))[-1].state == State.SUCCEEDED


async def test_ws_drop_mid_run_reconnects_and_keeps_progress(make, fake):
    fake.run_s = 1.0
    fake.faults.add("ws", "ws_drop", after=5)
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.SUCCEEDED
    assert fake.count("ws") >= 2
    assert any(u.step for u in ups)


@pytest.mark.parametrize("knob", ["ws_refuse", "ws_silent"])
async def test_socket_refused_or_silent_falls_back_to_polling(make, fake, knob):
    setattr(fake, knob, True)
    ref, ups = await run_task(make(), spec(wf.WF_SOLID))
    assert ups[-1].state == State.SUCCEEDED and len(ups[-1].outputs) == 1


async def test_download_truncated_once_is_retried(make, fake, tmp_path):
    p = make()
    ref, ups = await run_task(p, spec(wf.WF_SOLID))
    fake.faults.add("file", "truncate")
    img = await fetch_png(p, ups[-1].outputs[0].url, tmp_path)
    assert img.size == (64, 48)


async def test_download_expired(make, fake, tmp_path):
    p = make()
    ref, ups = await run_task(p, spec(wf.WF_SOLID))
    fake.expire_files = True
    with pytest.raises(NotFound) as e:
        await p.http.download(ups[-1].outputs[0].url, tmp_path / "gone.png")
    assert "403" in str(e.value)


# ---------------------------------------------------------------- canary

async def test_canary_key_never_leaks(make, fake):
    p = make()
    errors: list[RemoteError] = []
    fake.fail_next()
    ref, ups = await run_task(p, spec(wf.WF_SOLID))
    errors.append(ups[-1].error)
    for code, _ in INJECTED:
        fake.faults.add("create", "status", status=200, body={"code": code, "msg": "x", "data": None})
        try:
            await p.submit(spec(wf.WF_SOLID), "k")
        except RemoteError as e:
            errors.append(e)
    fake.faults.add("create", "drop_after")
    for call in (p.submit(spec(wf.WF_SOLID), "k"), p.validate(spec("99999")), p.cancel(RemoteRef("1"))):
        try:
            await call
        except RemoteError as e:
            errors.append(e)
    fake.faults.add("outputs", "malformed", times=-1)
    try:
        await collect(p, ref)
    except RemoteError as e:
        errors.append(e)
    assert len(errors) > 20
    for e in errors:
        no_canary(str(e), e.to_json(), e.hint, e.detail)
    no_canary(ref.data, [u.message for u in ups], [o.to_json() for o in ups[-1].outputs or []])


def test_capabilities():
    caps = RunningHubProvider.capabilities
    assert caps.cancel and caps.progress == "push" and caps.uploads and caps.addressing == "node"
    assert not caps.idempotent_submit and not caps.client_chosen_id and not caps.queue_position


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                     max_leaves=12)
_frame = st.fixed_dictionaries({"type": st.sampled_from(["status", "execution_start", "execution_cached",
                                                         "executing", "progress", "progress_state", "executed",
                                                         "execution_success", "execution_error", "x"]),
                                "data": _json | st.dictionaries(st.sampled_from(
                                    ["node", "nodes", "value", "max", "prompt_id"]), _json, max_size=5)})


@settings(max_examples=300, deadline=None)
@given(st.lists(_frame | _json, max_size=30))
def test_progress_parser_never_raises_and_stays_in_range(frames):
    prog = _Progress({"3": "KSampler", "6": "CLIPTextEncode"}, 2)
    for f in frames:
        prog.feed(f)
        frac = prog.fraction()
        assert frac is None or 0.0 <= frac <= 0.99
        assert prog.max == 0 or 0 <= prog.value <= prog.max
