"""Windows-only paths of the profile code, exercised on any OS by substituting what Windows lacks
or does differently: no ``os.fchmod`` (before Python 3.13), a ``chmod`` that only toggles the
read-only flag, a ``credentials.json`` that another process holds open (``os.replace`` refused),
and a ``profiles.toml`` saved by Notepad (UTF-8 with a BOM, or UTF-16). The *Set key* answer is
then a ConfigError naming the file — never a bare OSError (a 500 in the panel)."""
from __future__ import annotations

import os

import pytest

from comfyui_remote.engine.profiles import Profiles
from comfyui_remote.providers.base import ConfigError


@pytest.fixture
def windows(monkeypatch):
    monkeypatch.delattr(os, "fchmod", raising=False)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)  # Windows: only the read-only flag


def test_keys_are_stored_without_fchmod_or_a_working_chmod(tmp_path, windows):
    p = Profiles(tmp_path)
    p.store.set("runninghub", "api_key", "win-key-7781")
    assert Profiles(tmp_path).store.get("runninghub", "api_key") == "win-key-7781"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".credentials.")], "a temp file was left"


def test_a_credentials_file_held_open_elsewhere_is_a_clear_config_error(tmp_path, windows, monkeypatch):
    p = Profiles(tmp_path)
    p.store.set("runninghub", "api_key", "first-key-1234")

    def held(src, dst):  # WinError 32: the file is used by another process (an editor, a backup tool)
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(os, "replace", held)
    with pytest.raises(ConfigError) as e:
        p.store.set("runninghub", "api_key", "second-key-5678")
    assert "credentials.json" in str(e.value) and "second-key-5678" not in str(e.value)
    assert "first-key-1234" in (tmp_path / "credentials.json").read_text(), "the old keys are kept"
    assert not [f for f in tmp_path.iterdir() if f.name.startswith(".credentials.")], "a temp file was left"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_profiles_toml_saved_by_notepad(tmp_path, encoding):
    (tmp_path / "profiles.toml").write_text('[profiles.mine]\nprovider = "sandbox"\n', encoding=encoding)
    p = Profiles(tmp_path)
    names = p.names()  # the node list never breaks
    assert names[0] == "sandbox"
    if encoding == "utf-8-sig":  # a BOM is still UTF-8: the profile is read
        assert "mine" in names, p.file_error
    else:
        assert "mine" not in names and "UTF-8" in p.file_error
