"""ComfyUI Remote: run workflows on remote GPUs from a local graph.

This is the ComfyUI entry point. It imports ComfyUI (through ``nodes/`` and ``server``) only when
ComfyUI is the importer, so the engine and providers stay importable and testable without it.
"""
import importlib.util

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
WEB_DIRECTORY = "./web"

if importlib.util.find_spec("comfy") is not None and importlib.util.find_spec("server") is not None:
    from server import PromptServer

    from .nodes import fetch_media as _fetch_media
    from .nodes import inputs as _inputs
    from .nodes import media_inputs as _media_inputs
    from .nodes import remote as _remote
    from .nodes import runtime as _runtime
    from .routes import setup_routes as _setup_routes

    NODE_CLASS_MAPPINGS = {**_inputs.NODES, **_media_inputs.NODES, **_remote.NODES, **_fetch_media.NODES}
    NODE_DISPLAY_NAME_MAPPINGS = {**_inputs.DISPLAY, **_media_inputs.DISPLAY, **_remote.DISPLAY,
                                  **_fetch_media.DISPLAY}
    _setup_routes(PromptServer.instance.routes, _runtime.manager)
    _runtime.manager()  # start the engine now: re-attach unfinished tasks in the background

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
