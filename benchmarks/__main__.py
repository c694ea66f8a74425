"""``python -m benchmarks [--quick] [--only NAME,...]``: every benchmark, one table (benchmarks/README.md)."""
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "comfyui_remote" not in sys.modules:  # the checkout as the package, without ComfyUI (as conftest.py does)
    pkg = types.ModuleType("comfyui_remote")
    pkg.__path__ = [str(ROOT)]
    pkg.__file__ = str(ROOT / "__init__.py")
    sys.modules["comfyui_remote"] = pkg

from comfyui_remote.benchmarks.suite import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
