"""``credentials.json`` in the extension home: the keys set through the panel's write-only form,
mode 0600, written atomically; an unreadable file is an error, never taken for empty."""
from __future__ import annotations

import json
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Optional

from ..providers.base import ConfigError
from . import redaction

SECRET_FIELDS = frozenset({"api_key", "app_key", "app_secret", "user", "token", "private_key"})


class CredentialStore:
    """``credentials.json``: written only by the panel's set-key form, mode 0600, atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _load(self) -> dict:
        """The stored keys; {} when there is no file yet. A file that exists but cannot be read
        (permissions, broken JSON) is a ConfigError — never taken for empty and overwritten."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ConfigError(f"{self.path} cannot be read ({e.strerror or e.__class__.__name__})",
                              hint="fix its permissions; keys set in the panel are kept there") from None
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError(f"{self.path} is not valid JSON", hint="fix or remove it (it holds the keys set in "
                                                                     "the panel); it was left untouched") from None
        if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
            raise ConfigError(f"{self.path} does not hold a profiles table", hint="fix or remove it")
        return data

    def get(self, profile: str, name: str) -> Optional[str]:
        try:
            entry = self._load().get("profiles", {}).get(profile, {})
        except ConfigError as e:
            redaction.get_logger().warning("keys from the panel are not available: %s", e)
            return None
        value = entry.get(name) if isinstance(entry, dict) else None
        return value if isinstance(value, str) else None

    def set(self, profile: str, name: str, value: str) -> None:
        if name not in SECRET_FIELDS:
            raise ConfigError(f"'{name}' is not a key field", field=name,
                              hint="one of: " + ", ".join(sorted(SECRET_FIELDS)))
        redaction.register(value)
        with self._lock:
            data = self._load()
            entry = data.setdefault("profiles", {}).setdefault(profile, {})
            if not isinstance(entry, dict):
                entry = data["profiles"][profile] = {}
            entry[name] = value
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials.")
            try:
                if hasattr(os, "fchmod"):  # (not on Windows before Python 3.13)
                    os.fchmod(fd, stat.S_IRUSR | stat.S_IWUSR)
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh)
                os.chmod(tmp, stat.S_IRUSR | stat.S_IWUSR)
                os.replace(tmp, self.path)
            except BaseException as e:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                if isinstance(e, OSError):  # a full disk, a file another program holds open (Windows)
                    raise ConfigError(f"{self.path} cannot be written ({e.strerror or e.__class__.__name__})",
                                      hint="close programs that have it open, check the disk, then set the key "
                                           "again; the keys stored before are kept") from None
                raise
            os.chmod(self.path, stat.S_IRUSR | stat.S_IWUSR)
