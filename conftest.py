"""Make the checkout importable as the package ``comfyui_remote`` without running its
``__init__.py`` (which registers ComfyUI nodes), so engine/provider tests need no ComfyUI."""
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if "comfyui_remote" not in sys.modules:
    pkg = types.ModuleType("comfyui_remote")
    pkg.__path__ = [str(ROOT)]
    pkg.__file__ = str(ROOT / "__init__.py")
    sys.modules["comfyui_remote"] = pkg
