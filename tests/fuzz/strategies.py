"""What the fuzz tests feed the pack, and the one settings profile they run under.

``wire_json(module)`` draws JSON whose object keys and string values come half from the string
literals of the module that reads it (so a draw reaches past the first ``if "data" in answer``
into the deep branches) and half from arbitrary text; numbers include NaN, infinities, huge ints
and negatives. The budget is fixed and derandomized so CI runs the same examples every time.
"""
from __future__ import annotations

import ast
import math
import os
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, settings, strategies as st

from comfyui_remote.providers.errors import RemoteError

# examples per fuzz test: every fuzz test together stays well under a minute on 2 cores
EXAMPLES = int(os.environ.get("COMFYUI_REMOTE_FUZZ_EXAMPLES", "60"))
settings.register_profile("fuzz", derandomize=True, deadline=None, database=None, max_examples=EXAMPLES,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
FUZZ = settings(settings.get_profile("fuzz"))
# tests that cross a socket per example take fewer
FUZZ_IO = settings(FUZZ, max_examples=max(10, EXAMPLES // 3))

scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40))


@lru_cache(maxsize=None)
def literals(*modules: ModuleType) -> tuple[str, ...]:
    """The string literals of ``modules``' source (keys, states, codes they look for)."""
    found: set[str] = set()
    for m in modules:
        tree = ast.parse(Path(m.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) <= 40:
                found.add(node.value)
    return tuple(sorted(found))


def wire_json(*modules: ModuleType, leaves: Any = None) -> st.SearchStrategy:
    words = st.sampled_from(literals(*modules)) if modules else st.text(max_size=12)
    keys = words | st.text(max_size=12)
    base = leaves if leaves is not None else (scalars | words | words.map(lambda w: w.upper()))
    return st.recursive(base, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
                        max_leaves=16)


def json_objects(*modules: ModuleType) -> st.SearchStrategy:
    words = st.sampled_from(literals(*modules)) if modules else st.text(max_size=12)
    return st.dictionaries(words | st.text(max_size=12), wire_json(*modules), max_size=6)


def assert_clear(err: BaseException) -> None:
    """The pack's own error with a message a user can read: no Python internals, no traceback."""
    assert isinstance(err, RemoteError), f"{type(err).__name__}: {err}"
    text = str(err)
    assert text.strip(), "an empty message"
    assert "Traceback" not in text and "File \"" not in text, text


def finite_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and math.isfinite(x))
