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


@pytest.mark.parametrize("table,needle", [
    ('max_concurrent = "four"', "max_concurrent must be a whole number"),
    ("max_concurrent = 2.5", "max_concurrent must be a whole number"),
    ("poll_interval_s = -1", "poll_interval_s must be between"),
    ('poll_interval_s = "fast"', "poll_interval_s must be a number"),
    ("timeout_s = true", "timeout_s must be a number"),
    ("url = 12", "url must be a text"),
])
def test_a_wrongly_typed_field_names_itself_and_breaks_nothing_else(tmp_path, table, needle):
    url = "" if table.startswith("url") else 'url = "http://127.0.0.1:9"\n'
    (tmp_path / "profiles.toml").write_text(f'[profiles.bad]\nprovider = "comfyui"\n{url}'
                                            f'{table}\n[profiles.good]\nprovider = "sandbox"\n')
    p = Profiles(tmp_path)
    assert "bad" in p.names() and "good" in p.names() and p.get("good").configured
    bad = p.get("bad")
    assert not bad.configured and needle in bad.missing() and "[profiles.bad]" in bad.missing()
    with pytest.raises(ConfigError) as e:
        bad.check_configured()
    assert needle in str(e.value)
    assert bad.poll_interval_s > 0  # never a busy loop


def test_profiles_that_is_not_a_table_keeps_the_builtins(tmp_path):
    (tmp_path / "profiles.toml").write_text("profiles = 3\n")
    p = Profiles(tmp_path)
    assert "sandbox" in p.names() and "must be a table" in p.file_error


def test_an_unreadable_credentials_file_is_never_overwritten(tmp_path):
    p = Profiles(tmp_path)
    (tmp_path / "credentials.json").write_text('{"profiles": {"a": {"api_key": "keep-me-1234"}')  # broken JSON
    with pytest.raises(ConfigError) as e:
        p.store.set("runninghub", "api_key", "new-key-5678")
    assert "not valid JSON" in str(e.value)
    assert "keep-me-1234" in (tmp_path / "credentials.json").read_text()
    assert p.store.get("runninghub", "api_key") is None


def test_keys_are_stored_0600_where_os_fchmod_does_not_exist(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "fchmod")  # Windows before Python 3.13
    p = Profiles(tmp_path)
    p.store.set("runninghub", "api_key", "win-key-0600")
    assert p.store.get("runninghub", "api_key") == "win-key-0600"
    assert stat.S_IMODE(os.stat(tmp_path / "credentials.json").st_mode) == 0o600


def test_a_password_in_a_profile_url_is_a_secret(tmp_path):
    (tmp_path / "profiles.toml").write_text('[profiles.proxy]\nprovider = "comfyui"\n'
                                            'url = "https://ann:pw-CANARY-8813@gpu.example:8443"\n')
    prof = Profiles(tmp_path).get("proxy")
    assert "pw-CANARY-8813" not in json.dumps(prof.public()) and "ann" not in prof.public()["url"]
    assert redaction.scrub("refused https://ann:pw-CANARY-8813@gpu.example") == "refused https://ann:***@gpu.example"
