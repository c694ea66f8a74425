"""A remote INT, FLOAT or BOOLEAN read back from its text (RemoteFetchValue), without ComfyUI.

The remote shows a value with ``PreviewAny``, which writes ``str(value)`` (ComfyUI 0.3.64,
``comfy_extras/nodes_preview_any.py``, and the sandbox's copy): ``7``, ``-2.5``, ``1e+20``, ``inf``,
``True``. Read back leniently: an int from an integral number, a float from any number, a boolean
from True/False/true/false/1/0. Only the outputs a graph uses must parse; the others get 0, 0.0,
False so a float result does not fail for want of a boolean.
"""
from __future__ import annotations

import math
from typing import Collection, Optional, Sequence

from ..providers.base import RejectedInput
from . import results

NODE = "RemoteFetchValue"
OUTPUTS = ("int", "float", "boolean")
EXPECTED = {"int": "an integral number (7, -3, 2.0)", "float": "a number (2.5, 1e-3, inf)",
            "boolean": "True/False/true/false/1/0"}
BOOLEANS = {"True": True, "False": False, "true": True, "false": False, "1": True, "0": False}


def _as_float(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None


def _as_int(text: str) -> Optional[int]:
    try:
        return int(text)  # exact for integers of any size
    except ValueError:
        pass
    f = _as_float(text)
    return int(f) if f is not None and math.isfinite(f) and f.is_integer() else None


def _as_bool(text: str) -> Optional[bool]:
    return BOOLEANS.get(text)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def parse_value(text: str, wanted: Collection[str] = OUTPUTS) -> tuple[int, float, bool, str]:
    """``(int, float, boolean, text)`` read from ``text``; every output in ``wanted`` must parse
    (else RejectedInput on field ``select`` naming the text and what each was expected to be)."""
    t = text.strip()
    got = {"int": _as_int(t), "float": _as_float(t), "boolean": _as_bool(t)}
    bad = [k for k in OUTPUTS if k in wanted and got[k] is None]
    if bad:
        need = "; ".join(f"{k} output needs {EXPECTED[k]}" for k in bad)
        raise RejectedInput(f"the selected text {_short(t)!r} is not a value for the connected output(s): {need}",
                            node=NODE, field="select",
                            hint="select the remote PreviewAny that shows this value, or use RemoteFetchText for text")
    return (got["int"] if got["int"] is not None else 0, got["float"] if got["float"] is not None else 0.0,
            bool(got["boolean"]), text)


def used_outputs(prompt: Optional[dict], node_id: Optional[str]) -> Collection[str]:
    """Which of ``OUTPUTS`` some node of the API ``prompt`` takes from node ``node_id`` (every one
    when the prompt is not known)."""
    if not isinstance(prompt, dict) or node_id is None:
        return OUTPUTS
    used = set()
    for node in prompt.values():
        for v in (node.get("inputs") or {}).values() if isinstance(node, dict) else ():
            if isinstance(v, list) and len(v) == 2 and str(v[0]) == str(node_id) and v[1] in (0, 1, 2):
                used.add(OUTPUTS[v[1]])
    return used


def one_text(outputs: Sequence[dict], select: str) -> str:
    """The single text output ``select`` names (the select rules of every RemoteFetch* node)."""
    try:
        chosen = results.select_outputs(list(outputs), select, "text")
    except RejectedInput as e:
        raise e.with_context(node=NODE)
    if len(chosen) != 1:
        raise RejectedInput(f"select {select!r} names {len(chosen)} texts, a value needs exactly one; it has "
                            f"{results.contents(outputs)} ({results.describe(outputs)})", node=NODE, field="select",
                            hint="set select to the id of the remote PreviewAny that shows the value")
    return results.load_texts(chosen)[0]


def fetch_value(outputs: Sequence[dict], select: str, wanted: Collection[str] = OUTPUTS) -> tuple:
    return parse_value(one_text(outputs, select), wanted)
