"""The kind of a result file (design §2), from its name or else its MIME type."""
from __future__ import annotations

import pytest

from comfyui_remote.providers.kinds import kind_of, mime_of


@pytest.mark.parametrize("name, mime, kind", [
    ("clip.MP4?X-Amz-Expires=60", None, "video"), ("loop.gif", None, "video"), ("a.webm", None, "video"),
    ("song.flac", None, "audio"), ("v.opus", None, "audio"), ("out.png", None, "image"),
    ("caption.txt", None, "text"), ("mesh.glb", None, "file"), ("bundle.zip", None, "file"),
    (None, "audio/mpeg", "audio"), ("blob", "video/mp4", "video"), (None, "image/gif", "video"),
    (None, "text/plain; charset=utf-8", "text"), (None, None, "file"), ("noext", "application/json", "file"),
])
def test_kind_of_reads_the_extension_then_the_mime_type(name, mime, kind):
    assert kind_of(name, mime) == kind


def test_mime_of_guesses_from_the_name_and_falls_back_by_kind():
    assert mime_of("a.flac") == "audio/flac"
    assert mime_of("mesh.glb") == "model/gltf-binary"
    assert mime_of("noext", "audio") == "audio/flac" and mime_of(None) == "application/octet-stream"
