import importlib
import sys

MODULES = ["engine.transfer", "engine.profiles", "engine.redaction", "engine.tasks", "engine.media",
           "engine.journal", "providers.base", "providers.comfyui", "providers.sandbox", "providers.runninghub",
           "providers.tensorart", "providers.speedpix", "providers.nextgpu", "routes", "tests.fakes.toolkit"]


def test_engine_providers_and_routes_import_without_comfyui():
    for name in MODULES:
        importlib.import_module(f"comfyui_remote.{name}")
    assert "comfy" not in sys.modules and "server" not in sys.modules and "folder_paths" not in sys.modules
