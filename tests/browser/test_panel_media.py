"""Media results in the Remote panel (issue 14), on both frontends: a real remote ComfyUI writes a video
(``CreateVideo`` → ``SaveVideo``), an audio file (``EmptyAudio`` → ``SaveAudio``) and a text
(``PreviewAny``) with core nodes only; the local pack brings them home, and the panel shows a
poster decoded from the video's first frame that becomes a player, an audio player and the text —
as text. One short remote run per frontend."""
from __future__ import annotations

import json

import pytest

from ..e2e import harness
from .test_panel import browser_page, new_task, no_unknown_message, open_tab, row, shot, task_ids, wait_state

pytestmark = [pytest.mark.browser]

CAPTION = '<b>not bold</b> & a caption <img src=x onerror="window.__pwned=1">'
REMOTE = {
    "1": {"class_type": "SandboxSolid", "inputs": {"text": "#e01010", "width": 64, "height": 48}},
    "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 4}},
    "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0}},
    "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "browser_media/clip",
                                                "format": "mp4", "codec": "h264"}},
    "5": {"class_type": "EmptyAudio", "inputs": {"duration": 0.5, "sample_rate": 8000, "channels": 1}},
    "6": {"class_type": "SaveAudio", "inputs": {"audio": ["5", 0], "filename_prefix": "browser_media/voice"}},
    "7": {"class_type": "PrimitiveString", "inputs": {"value": CAPTION}},
    "8": {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}},
}
LOCAL = {
    "1": {"class_type": "RemoteSubmit", "inputs": {"profile": "comfyui", "workflow": json.dumps(REMOTE),
                                                   "reuse_result": False}},
    "2": {"class_type": "RemoteWait", "inputs": {"task": ["1", 0]}},
    "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
}


async def test_panel_shows_video_audio_and_text_results(frontend):
    async with harness.Client(frontend.url) as c:
        assert (await c.post("/settings/Comfy.TutorialCompleted", True))[0] == 200
        async with browser_page(frontend.url) as page:
            await open_tab(page, frontend)
            before = await task_ids(c)
            await c.queue(LOCAL)
            tid = (await new_task(c, before))["id"]
            assert await wait_state(page, tid, ("succeeded", "failed", "cancelled"), 120_000) == "succeeded"
            here = row(tid)
            kinds = page.locator(f"{here} [data-output-kind]")
            await kinds.nth(2).wait_for(state="attached")
            assert sorted(await kinds.evaluate_all("els => els.map(e => e.dataset.outputKind)")) == [
                "audio", "text", "video"]

            # the video: a poster (its first frame, decoded by the pack) that becomes a player
            video_box = f'{here} [data-output-kind="video"]'
            await page.locator(video_box).scroll_into_view_if_needed()
            await page.wait_for_function(
                "(sel) => { const i = document.querySelector(sel); return i && i.complete && i.naturalWidth > 0; }",
                arg=f'{video_box} img[data-role="poster"]', polling=100)
            size = await page.eval_on_selector(f'{video_box} img[data-role="poster"]',
                                               "i => [i.naturalWidth, i.naturalHeight]")
            assert size == [64, 48], size
            await shot(page, frontend, "20-media-results", panel_only=True)
            await page.locator(f'{video_box} [data-role="play"]').click()
            player = page.locator(f"{video_box} video[controls]")
            await player.wait_for(state="visible")
            assert await player.get_attribute("preload") == "none"

            # the audio: a player with controls
            audio = page.locator(f'{here} [data-output-kind="audio"] audio[controls]')
            await audio.wait_for(state="attached")

            # both are served seekable, with their types, never sniffed
            for sel, ctype in ((f"{video_box} video", "video/mp4"), (f'{here} [data-output-kind="audio"] audio',
                                                                      "audio/flac")):
                answer = await page.eval_on_selector(sel, """async (m) => {
                    const r = await fetch(m.src, {headers: {Range: 'bytes=0-15'}});
                    return [r.status, r.headers.get('content-type'), r.headers.get('x-content-type-options'),
                            (await r.arrayBuffer()).byteLength];
                }""")
                assert answer == [206, ctype, "nosniff", 16], (sel, answer)

            # the text: shown as text, never as markup
            pre = page.locator(f'{here} [data-output-kind="text"] pre[data-role="text"]')
            assert await pre.text_content() == CAPTION
            assert await page.locator(f'{here} [data-output-kind="text"] [data-role="show-all"]').is_hidden()
            assert await page.locator(f'{here} [data-output-kind="text"] pre img').count() == 0
            assert await page.evaluate("() => window.__pwned") is None
            await shot(page, frontend, "21-media-playing", panel_only=True)
            no_unknown_message(page)
