"""The example workflows ComfyUI shows in its template browser (``example_workflows/*.json``):
UI-format workflows whose nodes exist in the live ``/object_info``, whose ``widgets_values`` line up
with the frontend's widgets, whose links are consistent, that convert to exactly their committed
API-format source (``example_workflows/api/``), that ComfyUI lists under the pack's name — and the
sandbox and plain-ComfyUI ones run to success when queued as the frontend would queue them."""
from __future__ import annotations

import io
import json
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from . import harness
from .workflow_format import (EXAMPLES, SOURCES, api_to_ui, combo_options, input_type, output_slots,
                              socket_inputs, ui_to_api, widget_inputs, widget_layout)

pytestmark = [pytest.mark.e2e]
why = harness.available()
if why:
    pytest.skip(f"real ComfyUI not available: {why}", allow_module_level=True)

PACK = "comfyui_remote"  # the --as name of the local_comfy fixture
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))
EXPECTED = {"sandbox_invert", "sandbox_solid_submit_wait", "sandbox_slow", "comfyui_remote_server", "runninghub",
            "runninghub_app", "tensorart", "speedpix", "nextgpu", "recover", "comfycloud", "comfyui_remote_video",
            "sandbox_video", "runninghub_video"}
# the frontend's widgets per node type, in order, written out independently of the converter
# ("upload": LoadImage's button, saved as "image" but never sent to the API)
WIDGETS = {
    "LoadImage": ["image", "upload"],
    "SaveImage": ["filename_prefix"],
    "PreviewImage": [],
    "ImageScaleBy": ["upscale_method", "scale_by"],
    "RemoteInputText": ["target", "text"],
    "RemoteInputInt": ["target", "value"],
    "RemoteInputFloat": ["target", "value"],
    "RemoteInputImage": ["target"],
    "RemoteSubmit": ["profile", "workflow", "reuse_result"],
    "RemoteWait": ["timeout_s", "cancel_on_interrupt"],
    "RemoteFetchImage": ["select"],
    "RemoteFetchVideo": ["select", "frame_load_cap", "skip_first_frames", "select_every_nth"],
    "RemoteFetchText": ["select"],
    "SaveVideo": ["filename_prefix", "format", "codec"],
    "PreviewAny": [],
    "RemoteRun": ["profile", "workflow", "timeout_s", "select", "reuse_result", "cancel_on_interrupt"],
    "RemoteRecover": ["task_id", "profile", "timeout_s"],
}
NEEDS_TITLE = ("RemoteSubmit", "RemoteRun", "RemoteRecover")


def load(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def source(name: str) -> dict:
    return json.loads((SOURCES / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def object_info(local_comfy) -> dict:
    with urllib.request.urlopen(f"{local_comfy.url}/object_info", timeout=60) as r:
        return json.load(r)


def test_every_example_is_there_with_its_source():
    assert set(NAMES) == EXPECTED
    assert sorted(p.stem for p in SOURCES.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_nodes_exist_and_widgets_line_up(name, object_info):
    wf = load(name)
    assert wf["version"] == 0.4 and wf["groups"] == [] and isinstance(wf["config"], dict)
    assert isinstance(wf["extra"], dict)
    assert wf["last_node_id"] >= max(n["id"] for n in wf["nodes"])
    assert len({n["id"] for n in wf["nodes"]}) == len(wf["nodes"])
    for node in wf["nodes"]:
        where = f"{name}: node {node['id']} ({node['type']})"
        assert node["type"] in object_info, f"{where}: not in the live /object_info"
        info = object_info[node["type"]]
        assert isinstance(node["id"], int) and node["mode"] == 0 and node["flags"] == {}, where
        assert len(node["pos"]) == 2 and len(node["size"]) == 2 and isinstance(node["order"], int), where
        assert node["properties"]["Node name for S&R"] == node["type"], where
        if node["type"] in NEEDS_TITLE:
            assert node.get("title", "").startswith(info["display_name"]) and len(node["title"]) > len(
                info["display_name"]), f"{where}: the title should say what to replace"

        # widgets: the independent list, the live definition and the saved values agree
        specs = dict(widget_inputs(info))
        names = [n for n, _ in widget_layout(info)]
        assert [n or "upload" for n in names] == WIDGETS[node["type"]], where
        values = node["widgets_values"]
        assert len(values) == len(names), f"{where}: {len(values)} widget values for widgets {WIDGETS[node['type']]}"
        for wname, value in zip(names, values):
            if wname is None:
                assert value == "image", f"{where}: the upload button saves 'image'"
                continue
            spec, opts = specs[wname], (specs[wname][1] if len(specs[wname]) > 1 else {})
            kind = input_type(spec)
            what = f"{where}: widget {wname} = {value!r}"
            if kind == "INT":
                assert isinstance(value, int) and not isinstance(value, bool), what
                assert opts.get("min", -2**64) <= value <= opts.get("max", 2**64), what
            elif kind == "FLOAT":
                assert isinstance(value, (int, float)) and not isinstance(value, bool), what
                assert opts.get("min", -float("inf")) <= value <= opts.get("max", float("inf")), what
            elif kind == "BOOLEAN":
                assert isinstance(value, bool), what
            elif kind == "STRING":
                assert isinstance(value, str), what
            elif kind == "COMBO":
                if opts.get("image_upload"):
                    assert isinstance(value, str) and value, what  # the files in input/: any upload
                else:
                    assert value in combo_options(spec), f"{what} not in {combo_options(spec)}"
            else:
                pytest.fail(f"{what}: unexpected widget type {kind}")

        # slots: sockets in the definition's order, outputs exactly the definition's
        sockets = [(n, input_type(s)) for n, s, _ in socket_inputs(info)]
        assert [(i["name"], i["type"]) for i in node["inputs"] if "widget" not in i] == sockets, where
        assert [(o["name"], o["type"]) for o in node["outputs"]] == output_slots(info), where
        assert [o.get("slot_index", i) for i, o in enumerate(node["outputs"])] == list(range(len(node["outputs"])))


@pytest.mark.parametrize("name", NAMES)
def test_links_are_consistent(name, object_info):
    wf = load(name)
    nodes = {n["id"]: n for n in wf["nodes"]}
    ids = [link[0] for link in wf["links"]]
    assert len(set(ids)) == len(ids) and wf["last_link_id"] >= max(ids, default=0)
    seen_in, seen_out = set(), set()
    for link_id, src, src_slot, dst, dst_slot, typ in wf["links"]:
        assert src in nodes and dst in nodes, link_id
        out = nodes[src]["outputs"][src_slot]
        inp = nodes[dst]["inputs"][dst_slot]
        assert link_id in (out["links"] or []), f"{name}: link {link_id} not listed by its output"
        assert inp["link"] == link_id, f"{name}: link {link_id} not set on its input"
        assert out["type"] == typ and inp["type"] in (typ, "*"), (  # "*": any type (PreviewAny)
            f"{name}: link {link_id} joins {out['type']} to {inp['type']}")
        seen_in.add((dst, dst_slot))
        seen_out.add(link_id)
    for node in wf["nodes"]:
        for slot, inp in enumerate(node["inputs"]):
            if inp["link"] is not None:
                assert (node["id"], slot) in seen_in, f"{name}: node {node['id']} input {inp['name']}: dangling link"
        for out in node["outputs"]:
            for link_id in out["links"] or []:
                assert link_id in seen_out, f"{name}: node {node['id']} output {out['name']}: dangling link"
        required = {n for n, s, opt in socket_inputs(object_info[node["type"]]) if not opt}
        linked = {i["name"] for i in node["inputs"] if i["link"] is not None}
        assert required <= linked, f"{name}: node {node['id']} ({node['type']}) misses {required - linked}"


@pytest.mark.parametrize("name", NAMES)
def test_ui_to_api_is_the_committed_source(name, object_info):
    assert ui_to_api(load(name), object_info) == source(name)
    # and the committed UI file is what the generator makes from the source today
    assert api_to_ui(source(name), object_info) == load(name), (
        f"example_workflows/{name}.json is stale: python -m tests.e2e.workflow_format --object-info URL")


async def test_comfyui_lists_the_examples_under_the_pack(local_comfy):
    async with harness.Client(local_comfy.url) as c:
        templates = await c.get("/api/workflow_templates")
        assert sorted(templates.get(PACK, [])) == NAMES, templates  # top-level files only: not api/
        for name in NAMES:
            served = await c.get(f"/api/workflow_templates/{PACK}/{name}.json")
            assert served == load(name)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def saved(local, hist: dict, node_id: str) -> np.ndarray:
    img = hist["outputs"][node_id]["images"][0]
    path = Path(local.base) / img.get("type", "output") / img.get("subfolder", "") / img["filename"]
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


def rgb(hexcode: int) -> np.ndarray:
    return np.array([(hexcode >> 16) & 255, (hexcode >> 8) & 255, hexcode & 255], np.int16)


RUNNABLE = ["sandbox_invert", "sandbox_solid_submit_wait", "sandbox_slow", "comfyui_remote_server",
            "comfyui_remote_video", "sandbox_video"]


@pytest.mark.parametrize("name", RUNNABLE)
async def test_example_runs(name, local_comfy, object_info):
    ui = load(name)
    prompt = ui_to_api(ui, object_info)  # what the frontend queues for this workflow
    src = np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    async with harness.Client(local_comfy.url) as c:
        for node in prompt.values():
            if node["class_type"] == "LoadImage":
                node["inputs"]["image"] = await c.upload(f"example_{name}.png", png(src))
        status, body = await c.post("/prompt", {"prompt": prompt, "client_id": c.client_id,
                                                "extra_data": {"extra_pnginfo": {"workflow": ui}}})
        assert status == 200, body
        hist = await c.wait_done(body["prompt_id"], 180)
    assert hist["status"]["status_str"] == "success", hist["status"]
    (save_id,) = [nid for nid, n in prompt.items() if n["class_type"] == "SaveImage"]
    px = saved(local_comfy, hist, save_id)
    if name == "sandbox_invert":
        assert px.shape == src.shape and np.abs(px - (255 - src.astype(np.int16))).max() <= 1
    elif name == "sandbox_solid_submit_wait":  # solid.json is 64×64; the local ImageScaleBy doubles it
        assert px.shape == (128, 128, 3) and (px == rgb(0x2A9D8F)).all()
    elif name == "sandbox_slow":
        assert px.shape == (64, 64, 3) and (px == rgb(0xE76F51)).all()
    elif name == "comfyui_remote_video":  # 16 frames of 1.color inverted, through h264 (yuv420p) and back;
        # RemoteRun with only `result` connected fetches no image (this result has none)
        assert len(hist["outputs"][save_id]["images"]) == 16 and hist["outputs"]["4"]["images"][0]["filename"].endswith(".mp4")
        assert px.shape == (128, 128, 3) and np.abs(px - (255 - rgb(0x2A9D8F))).max() <= 4
    elif name == "sandbox_video":  # video.json: frames 1.text, its inverse, twice, through h264 and back
        assert len(hist["outputs"][save_id]["images"]) == 4 and hist["outputs"]["4"]["images"][0]["filename"].endswith(".mp4")
        assert px.shape == (48, 64, 3) and np.abs(px - rgb(0xE76F51)).max() <= 6
    else:  # the real remote ComfyUI: EmptyImage of colour 1.color, inverted there
        assert px.shape == (256, 256, 3) and np.abs(px - (255 - rgb(0x2A9D8F))).max() <= 1


LOAD_AND_QUEUE = """async (wf) => {
  await window.app.loadGraphData(wf, true, true, 'example');
  const {output, workflow} = await window.app.graphToPrompt();
  return {output, workflow, sizes: window.app.graph._nodes.map(n => [n.id, [n.size[0], n.size[1]]])};
}"""


@pytest.mark.browser
async def test_the_frontend_loads_each_example_and_queues_its_source(local_comfy):
    """ComfyUI's own 1.27 frontend in headless chromium: load each example, then graphToPrompt
    gives exactly the API source, saving it again keeps every widget value, and no node had to be
    resized to fit (so none overlaps its neighbour)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed in this Python")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("no chromium")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 900})
            await page.goto(local_comfy.url)
            await page.wait_for_function("window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            for name in NAMES:
                wf = load(name)
                got = await page.evaluate(LOAD_AND_QUEUE, wf)
                assert got["output"] == source(name), name
                resaved = {n["id"]: n.get("widgets_values") for n in got["workflow"]["nodes"]}
                assert resaved == {n["id"]: n["widgets_values"] for n in wf["nodes"]}, name
                assert {i: s for i, s in got["sizes"]} == {n["id"]: n["size"] for n in wf["nodes"]}, name
        finally:
            await browser.close()


async def test_runninghub_video_example_runs_against_the_fake(local_comfy, object_info):
    """The RunningHub video AI App example, queued as the frontend queues it, against the RunningHub
    fake (tests/fakes/runninghub_media.py): SaveVideo keeps the app's mp4 frames and sound, and the
    preview shows the caption the app saved, which is the prompt sent."""
    from comfyui_remote.tests import media_samples as ms

    ui = load("runninghub_video")
    prompt = ui_to_api(ui, object_info)
    async with harness.Client(local_comfy.url) as c:
        status, body = await c.post("/prompt", {"prompt": prompt, "client_id": c.client_id,
                                                "extra_data": {"extra_pnginfo": {"workflow": ui}}})
        assert status == 200, body
        hist = await c.wait_done(body["prompt_id"], 180)
    assert hist["status"]["status_str"] == "success", hist["status"]
    (video,) = [f for files in hist["outputs"]["5"].values() if isinstance(files, list)
                for f in files if isinstance(f, dict) and "filename" in f]
    data = (Path(local_comfy.base) / video.get("type", "output") / video.get("subfolder", "") /
            video["filename"]).read_bytes()
    served = ms.mp4(sound=True)
    assert np.array_equal(ms.decode_video_rgb(data), ms.decode_video_rgb(served.data))
    sound, rate = ms.decode_audio(data)
    want, want_rate = ms.decode_audio(served.data)
    assert rate == want_rate and np.array_equal(sound, want)
    assert hist["outputs"]["7"]["text"] == [prompt["1"]["inputs"]["text"]]
