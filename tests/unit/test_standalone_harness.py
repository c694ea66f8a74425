"""The harness copy in tests/standalone/ (what ./test.sh uses with COMFYUI_DIR when ../shared is not
beside the checkout) is the shared harness, byte for byte."""
import pytest

from ..e2e import harness

COPY = harness.REPO / "tests" / "standalone" / "tools"
SHARED_TOOLS = harness.REPO.parent / "shared" / "tools"


@pytest.mark.parametrize("name", ["comfyui", "comfyui-constraints.txt"])
def test_the_standalone_copy_is_the_shared_harness(name):
    if not (SHARED_TOOLS / name).exists():
        pytest.skip("no ../shared beside this checkout: nothing to compare the copy with")
    assert (COPY / name).read_bytes() == (SHARED_TOOLS / name).read_bytes(), (
        f"tests/standalone/tools/{name} differs from ../shared/tools/{name}: copy it over")
