import json

import pytest
from hypothesis import given, strategies as st

from comfyui_remote.providers.base import (Override, RejectedInput, SubmitSpec, apply_overrides, field_text,
                                           last_wins, parse_api_graph, parse_target)


@pytest.mark.parametrize("raw,node,field", [("6.text", "6", "text"), ("12:5.image", "12:5", "image"),
                                            (" 3.seed ", "3", "seed"), ("1.a.b", "1.a", "b")])
def test_node_targets_split_on_last_dot(raw, node, field):
    if raw == "1.a.b":
        with pytest.raises(RejectedInput):
            parse_target(raw, "node")
        return
    t = parse_target(raw, "node")
    assert (t.node, t.field) == (node, field)


@pytest.mark.parametrize("raw", ["", "text", ".text", "6.", "6 .text", "a b.c"])
def test_bad_node_targets_name_the_target_field(raw):
    with pytest.raises(RejectedInput) as e:
        parse_target(raw, "node")
    assert e.value.field == "target"


def test_field_targets():
    assert parse_target("prompt", "field").field == "prompt"
    with pytest.raises(RejectedInput):
        parse_target("6.text", "field")


@given(st.from_regex(r"[0-9]{1,4}(:[0-9]{1,3})?", fullmatch=True), st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True))
def test_node_target_round_trip(node, field):
    t = parse_target(f"{node}.{field}", "node")
    assert (t.node, t.field, str(t)) == (node, field, f"{node}.{field}")


def test_last_override_of_a_target_wins_keeping_chain_order():
    chain = [Override("1.a", "text", "x"), Override("2.b", "int", 1), Override("1.a", "text", "y")]
    assert [(o.target, o.value) for o in last_wins(chain)] == [("2.b", 1), ("1.a", "y")]


def test_ui_format_gets_an_export_hint():
    with pytest.raises(RejectedInput, match="UI format") as e:
        parse_api_graph(json.dumps({"nodes": [], "links": []}))
    assert "Export (API)" in e.value.hint


def test_not_json_and_not_a_graph():
    with pytest.raises(RejectedInput, match="not valid JSON"):
        parse_api_graph("{nope")
    with pytest.raises(RejectedInput, match="not an API-format graph"):
        parse_api_graph("[1, 2]")


def test_apply_overrides_and_missing_node_or_field():
    g = {"1": {"class_type": "A", "inputs": {"text": "x"}}}
    out = apply_overrides(g, SubmitSpec("", (Override("1.text", "text", "y"),)))
    assert out["1"]["inputs"]["text"] == "y" and g["1"]["inputs"]["text"] == "x"
    with pytest.raises(RejectedInput, match="no node '9'"):
        apply_overrides(g, SubmitSpec("", (Override("9.text", "text", "y"),)))
    with pytest.raises(RejectedInput, match="has no input 'seed'.*text"):
        apply_overrides(g, SubmitSpec("", (Override("1.seed", "int", 1),)))


def test_remote_inputs_print_compactly():
    big = Override("10.image", "image", b"\x89PNG" + bytes(5_000_000), sha256="ab" * 32, width=512, height=512)
    text = repr((big, Override("6.text", "text", "a cat " * 100)))
    assert len(text) < 300 and "5000004 bytes" in text and "512x512" in text and "\\x00" not in text


def test_settings_that_change_what_the_service_makes_are_part_of_the_reuse_key(tmp_path):
    from comfyui_remote.engine.profiles import Profiles
    from comfyui_remote.engine.workflows import reuse_key

    (tmp_path / "profiles.toml").write_text(
        '[profiles.a]\nprovider = "runninghub"\napi_key = "k-1234"\ninstance_type = "default"\n'
        '[profiles.b]\nprovider = "runninghub"\napi_key = "k-1234"\ninstance_type = "plus"\n')
    profiles = Profiles(tmp_path)
    a, b = profiles.get("a"), profiles.get("b")
    b.name = a.name  # the same profile, edited: only the setting differs
    assert reuse_key(a, "1979026379880697857", []) != reuse_key(b, "1979026379880697857", [])
    b.settings["instance_type"], b.settings["max_rps"] = "default", 3  # pacing does not change results
    assert reuse_key(a, "1979026379880697857", []) == reuse_key(b, "1979026379880697857", [])


@pytest.mark.parametrize("kind,value,text", [("boolean", True, "true"), ("boolean", False, "false"),
                                             ("int", -7, "-7"), ("int", 2 ** 64 - 1, str(2 ** 64 - 1)),
                                             ("float", 2.0, "2.0"), ("text", "a fox", "a fox"), ("text", None, "")])
def test_a_value_as_a_text_field_keeps_its_meaning(kind, value, text):
    """RunningHub's nodeInfoList and TAMS template fields are text: a boolean is JSON's true/false
    (Python's "True" is not what a service's parser expects), a float keeps its point."""
    assert field_text(Override("3.x", kind, value)) == text


def test_a_boolean_override_lands_in_the_graph_as_a_json_boolean():
    g = {"2": {"class_type": "PrimitiveBoolean", "inputs": {"value": True}}}
    out = apply_overrides(g, SubmitSpec("", (Override("2.value", "boolean", False),)))
    assert json.dumps(out["2"]["inputs"]) == '{"value": false}'
