"""``profiles.toml`` as users hand-edit it: arbitrary text and bytes, and well-formed TOML with
every field of any type. Loading never raises (the node list — every node's INPUT_TYPES — comes
from ``Profiles.names()``, and a raise there makes ComfyUI drop every Remote node); a bad profile
refuses to run with a ConfigError naming it, and its public view shows no secret."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import example, given, strategies as st

from comfyui_remote.engine import redaction
from comfyui_remote.engine.profiles import BUILTIN_NAMES, COMMON_FIELDS, PROVIDERS, SECRET_FIELDS, Profile, Profiles
from comfyui_remote.providers.base import ConfigError
from comfyui_remote.tests.fuzz.strategies import FUZZ, assert_clear

KEYS = st.sampled_from(sorted({*COMMON_FIELDS, *SECRET_FIELDS, "private_key_file", "token_env", "api_key_env",
                               "base_workflow_id", "instance_type", "surface", "max_rps", "jobs_api"})) \
    | st.text(min_size=1, max_size=10)
TOML_SCALARS = (st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=30)
                | st.sampled_from(PROVIDERS) | st.sampled_from(("http://[::1", "http://u:p@h:1/", "http://h:99999",
                                                                 "ftp://x", "http://[", "//", "")))


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


TOML_VALUES = st.recursive(TOML_SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=3), max_leaves=6)
TABLES = st.dictionaries(KEYS, TOML_VALUES, max_size=7)


def toml_text(tables: dict) -> str:
    out = []
    for name, table in tables.items():
        out.append(f"[profiles.{json.dumps(name)}]")
        out += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(out) + "\n"


DOCS = (st.dictionaries(st.sampled_from(BUILTIN_NAMES) | st.text(min_size=1, max_size=8), TABLES, max_size=3)
        .map(toml_text).map(str.encode)
        | st.text(max_size=200).map(str.encode)
        | st.binary(max_size=100)
        | st.sampled_from((b"profiles = 3\n", b"[profiles]\nx = 1\n", b"profiles = [1, 2]\n", b"\xff\xfe[profiles.a]\n",
                           b"[profiles.a]\nprovider = \"comfyui\"\nurl = \"http://[::1\"\n")))


@pytest.fixture(scope="module", autouse=True)
def keep_redaction():
    """Fuzzed literal secrets must not mask words in the tests that follow."""
    with redaction._lock:
        saved = (set(redaction._secrets), set(redaction._words), redaction._pattern)
    yield
    with redaction._lock:
        redaction._secrets.clear(), redaction._secrets.update(saved[0])
        redaction._words.clear(), redaction._words.update(saved[1])
        redaction._pattern = saved[2]


@FUZZ
@given(doc=DOCS)
@example(doc=b"\xff\xfe[profiles.a]\n")  # found: a file that is not UTF-8 (Notepad's UTF-16) raised
@example(doc=b"[profiles.a]\nprovider = \"comfyui\"\nurl = \"http://[::1\"\n")  # a URL urlsplit refuses
def test_any_profiles_toml_keeps_every_node_and_names_what_is_wrong(doc, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    (home / "profiles.toml").write_bytes(doc)
    p = Profiles(home, env={})
    names = p.names()  # what every node's INPUT_TYPES lists
    assert names[:len(BUILTIN_NAMES)] == list(BUILTIN_NAMES) and all(isinstance(n, str) for n in names)
    for name in names:
        prof = p.get(name)
        assert isinstance(prof, Profile)
        try:
            prof.check_configured()
            p.validate_provider(prof)
        except Exception as e:  # noqa: BLE001
            assert_clear(e)
            assert isinstance(e, ConfigError) and name in str(e), e
        view = prof.public()
        assert json.dumps(view) and isinstance(view["configured"], bool)
        assert isinstance(prof.max_concurrent, int) and prof.max_concurrent >= 1
        assert math.isfinite(prof.poll_interval_s) and prof.poll_interval_s > 0
        assert prof.timeout_s is None or (math.isfinite(prof.timeout_s) and prof.timeout_s > 0)
        for fld in SECRET_FIELDS:
            value = prof.secret(fld)
            if value and len(value) >= 4:
                assert value not in json.dumps(view), "a secret in the public view"
    if p.file_error:
        assert "profiles.toml" in p.file_error
