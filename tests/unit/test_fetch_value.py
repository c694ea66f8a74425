"""RemoteFetchValue's engine half: a remote INT/FLOAT/BOOLEAN read back from the text PreviewAny shows."""
import asyncio
import math

import pytest
from comfyui_remote.engine import values
from comfyui_remote.providers.base import RejectedInput
from comfyui_remote.sandbox.media_nodes import _preview_any
from hypothesis import given
from hypothesis import strategies as st


def shown(v) -> str:
    """What the sandbox's PreviewAny (the same code as ComfyUI 0.3.64's) writes for ``v``."""
    return asyncio.run(_preview_any(None, v))[1]["text"][0]


def texts(*pairs):
    return [{"n": i, "kind": "text", "node": node, "text": t} for i, (node, t) in enumerate(pairs)]


@given(st.integers())
def test_an_int_comes_back_exactly(v):
    i, _, _, text = values.parse_value(shown(v), ["int"])
    assert (i, text) == (v, str(v)) and type(i) is int


@given(st.floats(allow_nan=False))
def test_a_float_comes_back_exactly(v):
    _, f, _, _ = values.parse_value(shown(v), ["float"])
    assert f == v and math.copysign(1, f) == math.copysign(1, v)


def test_nan_comes_back_as_nan():
    assert math.isnan(values.parse_value(shown(float("nan")), ["float"])[1])


@pytest.mark.parametrize("v", [True, False])
def test_a_boolean_comes_back(v):
    assert shown(v) == str(v)  # "True"/"False", as ComfyUI's PreviewAny writes it
    assert values.parse_value(shown(v), ["boolean"])[2] is v


@pytest.mark.parametrize("text,expect", [
    ("7", (7, 7.0, False)), ("1", (1, 1.0, True)), ("0", (0, 0.0, False)), ("2.0", (2, 2.0, False)),
    ("1e+20", (10**20, 1e20, False)), (" -3\n", (-3, -3.0, False)), ("true", (0, 0.0, True)),
    ("False", (0, 0.0, False))])
def test_lenient_reading_with_nothing_required(text, expect):
    assert values.parse_value(text, [])[:3] == expect


@pytest.mark.parametrize("text,wanted,bad", [
    ("2.5", ["int"], ["int"]), ("inf", ["int", "float"], ["int"]), ("a cat", ["float", "boolean"], ["float", "boolean"]),
    ("2", ["boolean"], ["boolean"]), ("yes", ["int", "boolean"], ["int", "boolean"])])
def test_a_connected_output_that_cannot_be_read_is_refused_by_name(text, wanted, bad):
    with pytest.raises(RejectedInput) as e:
        values.parse_value(text, wanted)
    msg = str(e.value)
    assert e.value.field == "select" and "RemoteFetchValue" in msg and repr(text) in msg
    assert [w for w in values.OUTPUTS if f"{w} output needs" in msg] == bad


def test_an_unconnected_output_does_not_fail_a_float():
    assert values.parse_value("2.5", ["float"])[:3] == (0, 2.5, False)


def test_a_long_text_is_truncated_in_the_error():
    with pytest.raises(RejectedInput) as e:
        values.parse_value("x" * 5000, ["int"])
    assert "(5000 characters)" in str(e.value) and len(str(e.value)) < 600


def test_exactly_one_text_is_selected():
    outs = texts(("9", "hello"), ("15", "7")) + [{"n": 2, "kind": "image", "filename": "a.png", "node": "5"}]
    assert values.fetch_value(outs, "15", ["int"])[0] == 7
    with pytest.raises(RejectedInput) as e:
        values.fetch_value(outs, "", ["int"])
    assert "names 2 texts" in str(e.value) and "1 image: use RemoteFetchImage" in str(e.value)
    with pytest.raises(RejectedInput) as e:
        values.fetch_value(outs, "99", ["int"])
    assert "RemoteFetchValue" in str(e.value) and "matches nothing" in str(e.value)


def test_the_outputs_used_are_read_from_the_prompt():
    prompt = {"3": {"class_type": "RemoteFetchValue", "inputs": {"result": ["2", 2], "select": "15"}},
              "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 1]}},
              "5": {"class_type": "X", "inputs": {"a": ["3", 2], "b": ["3", 3], "c": ["30", 0]}}}
    assert values.used_outputs(prompt, "3") == {"float", "boolean"}
    assert values.used_outputs(prompt, "4") == set()
    assert values.used_outputs(None, "3") == values.OUTPUTS
