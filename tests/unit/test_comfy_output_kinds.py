"""ComfyUI and Comfy API v2 output shapes → kinds (the shapes ComfyUI 0.3.64's core savers write:
comfy_extras/nodes_video.py, nodes_audio.py, nodes_images.py, nodes_preview_any.py; the proxy's, from
providers/comfy-api-v2.md §5)."""
from types import SimpleNamespace

from comfyui_remote.providers.comfycloud_wire import output_kind
from comfyui_remote.providers.comfyui import ComfyUIProvider

HISTORY = {"outputs": {
    "3": {"images": [{"filename": "ComfyUI_00001_.mp4", "subfolder": "video", "type": "output"}], "animated": [True]},
    "4": {"audio": [{"filename": "ComfyUI_00001_.flac", "subfolder": "audio", "type": "output"}]},
    "5": {"text": ["a cat"]},
    "6": {"images": [{"filename": "ComfyUI_00001_.webp", "subfolder": "", "type": "output"}], "animated": [True]},
    "7": {"images": [{"filename": "ComfyUI_temp_abcde_00001_.png", "subfolder": "", "type": "temp"}]},
    "8": {"gifs": [{"filename": "AnimateDiff_00001.mp4", "subfolder": "", "type": "output",
                    "format": "video/h264-mp4"}]},
    "9": {"3d": [{"filename": "mesh_00001_.glb", "subfolder": "3d", "type": "output"}]},
    "10": {"images": [{"filename": "ComfyUI_00001_.webm", "subfolder": "", "type": "output"}], "animated": [True]},
}}


def test_every_core_output_shape_has_its_kind():
    p = ComfyUIProvider(SimpleNamespace(url="http://remote:8188", name="remote"), None)
    outs = p._outputs("http://remote:8188", HISTORY)
    got = [(o.node, o.kind, o.filename, o.mime, o.preview) for o in outs]
    assert got == [("3", "video", "ComfyUI_00001_.mp4", "video/mp4", None),
                   ("4", "audio", "ComfyUI_00001_.flac", "audio/flac", None),
                   ("6", "image", "ComfyUI_00001_.webp", "image/webp", None),
                   ("7", "image", "ComfyUI_temp_abcde_00001_.png", "image/png", True),
                   ("8", "video", "AnimateDiff_00001.mp4", "video/mp4", None),
                   ("9", "file", "mesh_00001_.glb", "model/gltf-binary", None),
                   ("10", "video", "ComfyUI_00001_.webm", "video/webm", None),
                   ("5", "text", None, None, None)]
    assert outs[-1].text == "a cat"
    assert "subfolder=video" in outs[0].url and "type=temp" in outs[3].url


def test_comfy_api_v2_types_and_names():
    assert output_kind({"type": "image", "name": "v_00001_.mp4"}, "video/mp4") == ("video", None)
    assert output_kind({"type": "image", "name": "ComfyUI_temp_qwert_00003_.png"}, "image/png") == ("image", True)
    assert output_kind({"type": "audio", "name": "a.flac"}, "audio/flac") == ("audio", None)
    assert output_kind({"type": "text", "name": "t.txt"}, "text/plain") == ("text", None)
    assert output_kind({"type": "file", "name": "m.glb"}, "application/octet-stream") == ("file", None)
