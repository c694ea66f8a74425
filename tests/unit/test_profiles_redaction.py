import json
import logging
import os
import stat

import pytest

from comfyui_remote.engine import redaction
from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.providers.base import ConfigError


def test_builtins_always_listed_and_configured_from_env(tmp_path):
    p = Profiles(tmp_path, env={"RUNNINGHUB_API_KEY": "rh-canary-key-123"})
    assert p.names()[:6] == ["sandbox", "runninghub", "tensorart", "speedpix", "nextgpu", "comfyui"]
    assert p.get("sandbox").configured
    assert not p.get("comfyui").configured and "COMFYUI_REMOTE_URL" in p.get("comfyui").missing()
    assert "TENSORART_BASE_URL" in p.get("tensorart").missing()


def test_missing_key_error_names_the_env_var(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNNINGHUB_API_KEY", raising=False)
    prof = Profiles(tmp_path).get("runninghub")
    with pytest.raises(ConfigError) as e:
        prof.check_configured()
    assert "RUNNINGHUB_API_KEY" in str(e.value) and "runninghub" in str(e.value)


def test_file_profiles_literal_env_and_credentials_order(tmp_path, monkeypatch):
    (tmp_path / "profiles.toml").write_text(
        '[profiles.mine]\nprovider = "comfyui"\nurl = "http://127.0.0.1:9/"\ntoken_env = "MY_TOKEN"\n'
        'max_concurrent = 2\n[profiles.lit]\nprovider = "runninghub"\napi_key = "literal-key-xyz"\n'
        '[profiles.runninghub]\nprovider = "runninghub"\napi_key = "override-key-abc"\n')
    monkeypatch.setenv("MY_TOKEN", "env-token-123")
    p = Profiles(tmp_path)
    mine = p.get("mine")
    assert mine.url == "http://127.0.0.1:9" and mine.max_concurrent == 2 and mine.secret("token") == "env-token-123"
    assert p.get("lit").secret("api_key") == "literal-key-xyz"
    assert p.get("runninghub").secret("api_key") == "override-key-abc"  # a file profile replaces a built-in
    assert "mine" in p.names() and "lit" in p.names()
    monkeypatch.delenv("MY_TOKEN")
    p.store.set("mine", "token", "stored-token-456")
    assert Profiles(tmp_path).get("mine").secret("token") == "stored-token-456"


def test_credentials_file_is_0600_and_never_in_public_view(tmp_path):
    p = Profiles(tmp_path)
    p.store.set("runninghub", "api_key", "canary-0600-key")
    mode = stat.S_IMODE(os.stat(tmp_path / "credentials.json").st_mode)
    assert mode == 0o600
    prof = p.get("runninghub")
    assert prof.configured
    assert "canary-0600-key" not in json.dumps(prof.public())


def test_broken_toml_keeps_builtins_and_reports(tmp_path):
    (tmp_path / "profiles.toml").write_text("[profiles.x\n")
    p = Profiles(tmp_path)
    assert "sandbox" in p.names() and p.file_error


def test_redaction_masks_registered_secrets_everywhere(caplog):
    secret = "sk-CANARY-redact-9f8e7d"
    redaction.register(secret)
    assert redaction.scrub(f"key={secret}") == "key=***"
    assert redaction.scrub({"a": [f"x{secret}"]}) == {"a": ["x***"]}
    assert secret not in redaction.scrub("https://h/p?apiKey=sk-CANARY-redact-9f8e7d")
    log = redaction.get_logger("comfyui_remote.test")
    with caplog.at_level(logging.INFO, logger="comfyui_remote.test"):
        log.info("sending %s", secret)
    assert secret not in caplog.text and "***" in caplog.text
    assert redaction.strip_query("https://h/a?b=c") == "https://h/a?…"


def test_env_mapping_is_used_for_builtin_secrets(tmp_path):
    p = Profiles(tmp_path, env={"RUNNINGHUB_API_KEY": "rh-canary-key-123"})
    assert p.get("runninghub").secret("api_key") == "rh-canary-key-123"
    assert p.get("runninghub").configured


def test_short_secrets_are_masked_where_they_stand_as_a_word():
    redaction.register("zq9")  # a nextGPU user name is a secret, however short
    assert redaction.scrub("user zq9 refused; zq9x ok") == "user *** refused; zq9x ok"


def test_tracebacks_in_logs_are_scrubbed(caplog):
    secret = "sk-CANARY-traceback-31337"
    redaction.register(secret)
    log = redaction.get_logger("comfyui_remote.test.tb")
    with caplog.at_level(logging.ERROR, logger="comfyui_remote.test.tb"):
        try:
            raise ValueError(f"bad answer for {secret}")
        except ValueError:
            log.exception("request failed")
    assert secret not in caplog.text and "ValueError" in caplog.text and "***" in caplog.text


def test_every_error_message_passes_the_redaction_point():
    from comfyui_remote.providers.errors import RemoteError

    secret = "sk-CANARY-error-424242"
    redaction.register(secret)
    e = RemoteError(f"the service echoed {secret}", hint=f"key {secret} refused")
    assert secret not in str(e) and secret not in repr(e) and secret not in str(e.args)


def test_urls_in_messages_lose_user_and_password():
    assert redaction.strip_query("https://ann:s3cret-pw@host:8188/api?x=1") == "https://host:8188/api?…"


def test_production_code_takes_its_loggers_from_the_redaction_point():
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [root / "routes.py", *(p for d in ("engine", "providers", "nodes", "sandbox")
                                       for p in (root / d).rglob("*.py"))]:
        if path.name == "redaction.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "getLogger":
                offenders.append(str(path.relative_to(root)))
    assert not offenders, offenders
