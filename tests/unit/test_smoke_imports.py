from comfyui_remote.engine import transfer, profiles, redaction
from comfyui_remote.providers import base
from comfyui_remote.tests.fakes import toolkit


def test_modules_import_without_comfyui():
    import sys
    assert "comfy" not in sys.modules and "server" not in sys.modules
    assert base.State("queued") is base.State.QUEUED
