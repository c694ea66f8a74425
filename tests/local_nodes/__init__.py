"""Test-only nodes loaded into the *local* ComfyUI by the end-to-end tests (never shipped to users:
ComfyUI loads only the package root's __init__.py). ``TestBlockingSleep`` is a synchronous node
that blocks the prompt loop, like a KSampler would, while passing its input through;
``TestFailAfter`` fails like a local KSampler running out of memory, after a delay."""
import time


class AnyType(str):
    def __ne__(self, other):  # matches every socket type
        return False


ANY = AnyType("*")


class TestBlockingSleep:
    CATEGORY = "testing"
    RETURN_TYPES = (ANY,)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": (ANY,), "seconds": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 60.0})}}

    def run(self, value, seconds):
        time.sleep(seconds)  # deliberately blocking
        return (value,)


class TestFailAfter:
    """Not an output node and not async: ComfyUI starts waiting async nodes before it."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seconds": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 60.0})},
                "optional": {"after": (ANY,)}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, seconds, after=None):
        time.sleep(seconds)
        raise RuntimeError("CUDA out of memory (a local node failed on purpose)")


NODE_CLASS_MAPPINGS = {"TestBlockingSleep": TestBlockingSleep, "TestFailAfter": TestFailAfter}
