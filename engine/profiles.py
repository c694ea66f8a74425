"""Profiles: built-ins configured by environment variables, ``profiles.toml`` in the extension
home, and keys set through the panel (``credentials.json``, mode 0600).

Secret lookup order for a field ``F`` of a file profile: literal ``F``, the variable named by
``F_env``, then ``credentials.json``. Built-in profiles read their documented variables.
Every secret value read is registered with the redaction point before it is returned.
"""
from __future__ import annotations

import os
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package (requirements.txt)
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

from ..providers.base import ConfigError
from . import redaction
from .credentials import SECRET_FIELDS, CredentialStore  # noqa: F401  (SECRET_FIELDS: part of this module's API)

PROVIDERS = ("runninghub", "tensorart", "speedpix", "nextgpu", "comfyui", "comfycloud", "sandbox")
BUILTIN_NAMES = ("sandbox", "runninghub", "tensorart", "speedpix", "nextgpu", "comfyui", "comfycloud")
COMMON_FIELDS = ("provider", "url", "max_concurrent", "poll_interval_s", "timeout_s")

# Built-in profiles: where each field comes from. "url_default" None = no default.
BUILTINS: dict[str, dict[str, Any]] = {
    "sandbox": {"provider": "sandbox", "env": {}},
    "runninghub": {"provider": "runninghub", "url_env": "RUNNINGHUB_BASE_URL",
                   "url_default": "https://www.runninghub.cn",
                   "env": {"api_key": "RUNNINGHUB_API_KEY", "base_workflow_id": "RUNNINGHUB_BASE_WORKFLOW_ID"}},
    "tensorart": {"provider": "tensorart", "url_env": "TENSORART_BASE_URL", "url_default": None,
                  "env": {"api_key": "TENSORART_API_KEY", "app_id": "TENSORART_APP_ID",
                          "private_key_file": "TENSORART_PRIVATE_KEY_FILE"}},
    "speedpix": {"provider": "speedpix", "url_env": "SPEEDPIX_ENDPOINT",
                 "url_default": "https://openai.edu-aliyun.com",
                 "env": {"app_key": "SPEEDPIX_APP_KEY", "app_secret": "SPEEDPIX_APP_SECRET",
                         "resource_config_id": "SPEEDPIX_RESOURCE_CONFIG_ID"}},
    "nextgpu": {"provider": "nextgpu", "url_env": "NEXTGPU_BASE_URL", "url_default": "https://www.nextgpu.net",
                "env": {"user": "NEXTGPU_USER", "token": "NEXTGPU_TOKEN",
                        "image_upload_url": "NEXTGPU_IMAGE_UPLOAD_URL"}},
    "comfyui": {"provider": "comfyui", "url_env": "COMFYUI_REMOTE_URL", "url_default": None,
                "env": {"token": "COMFYUI_REMOTE_TOKEN"}},
    "comfycloud": {"provider": "comfycloud", "url_env": "COMFY_BASE_URL", "url_default": "https://cloud.comfy.org",
                   "env": {"api_key": "COMFY_API_KEY"}},
}

# What a provider needs before it can run: each entry is a tuple of alternatives, each
# alternative a tuple of fields that must all be set.
REQUIREMENTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "sandbox": ((),),
    "runninghub": (("api_key",),),
    "tensorart": (("api_key",), ("app_id", "private_key")),
    "speedpix": (("app_key", "app_secret"),),
    "nextgpu": (("user",),),
    "comfyui": ((),),
    "comfycloud": (("api_key",),),
}
NEEDS_URL = frozenset({"runninghub", "tensorart", "speedpix", "nextgpu", "comfyui", "comfycloud"})
# a key is needed only on these hosts (Comfy Cloud, serverless deployments); a self-hosted
# comfy-api-proxy needs none unless it was started with --token
KEYLESS_EXCEPT_HOSTS = {"comfycloud": ("comfy.org", ".comfy.app")}
DEFAULT_MAX_CONCURRENT = {"comfyui": 4, "sandbox": 8}


def default_home() -> Path:
    env = os.environ.get("COMFYUI_REMOTE_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".comfyui_remote"


@dataclass
class Profile:
    name: str
    provider: str
    url: Optional[str] = None
    max_concurrent: int = 4
    poll_interval_s: float = 1.0
    timeout_s: Optional[float] = None
    settings: dict = field(default_factory=dict)  # non-secret provider fields
    problems: list = field(default_factory=list)  # wrong types or values found in profiles.toml
    source: str = "builtin"  # builtin | file
    # field -> list of ("literal", value) / ("env", VAR) / ("credentials", None)
    _secret_sources: dict = field(default_factory=dict, repr=False)
    _store: Optional["CredentialStore"] = field(default=None, repr=False)
    _env: Optional[Mapping[str, str]] = field(default=None, repr=False)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.settings.get(name)
        return default if value in (None, "") else value

    def secret(self, name: str) -> Optional[str]:
        """The secret ``name`` from its first configured source, registered for redaction."""
        for kind, ref in self._secret_sources.get(name, []):
            if kind == "literal":
                value = ref
            elif kind == "env":
                value = (self._env if self._env is not None else os.environ).get(ref)
            elif kind == "file":
                value = _read_text(ref)
            else:
                value = self._store.get(self.name, name) if self._store else None
            if value:
                value = str(value).strip()
                redaction.register(value)
                return value
        return None

    def where(self, name: str) -> str:
        """Human words for where a field is configured (for errors): env var or profiles.toml."""
        envs = [ref for kind, ref in self._secret_sources.get(name, []) if kind == "env"]
        if self.source == "builtin" and envs:
            return f"environment variable {envs[0]}"
        spec = BUILTINS.get(self.name, {})
        if self.source == "builtin" and name in spec.get("env", {}):
            return f"environment variable {spec['env'][name]}"
        return f"'{name}' (or '{name}_env') in [profiles.{self.name}] of profiles.toml, or the panel's key form"

    def require(self, name: str, what: str = "") -> str:
        value = self.secret(name)
        if not value:
            raise ConfigError(f"profile '{self.name}' has no {what or name}", provider=self.provider,
                              profile=self.name, field=name, hint=f"set {self.where(name)}")
        return value

    def has(self, name: str) -> bool:
        if name in SECRET_FIELDS:
            return bool(self.secret(name))
        return bool(self.get(name))

    def missing(self) -> Optional[str]:
        """None when the profile can run; else what to set, in words."""
        if self.problems:
            return f"fix [profiles.{self.name}] in profiles.toml: " + "; ".join(self.problems)
        if self.provider in NEEDS_URL and not self.url:
            spec = BUILTINS.get(self.name, {})
            how = (f"environment variable {spec['url_env']}" if self.source == "builtin" and spec.get("url_env")
                   else f"'url' in [profiles.{self.name}] of profiles.toml")
            return f"no endpoint URL: set {how}"
        alternatives = REQUIREMENTS.get(self.provider, ((),))
        hosts = KEYLESS_EXCEPT_HOSTS.get(self.provider)
        if hosts and not (urlsplit(self.url or "").hostname or "").endswith(hosts):
            alternatives = ((),)
        for alt in alternatives:
            if all(self.has(f) for f in alt):
                return None
        first = alternatives[0]
        lacking = [f for f in first if not self.has(f)]
        return "missing " + ", ".join(f"{f} ({self.where(f)})" for f in lacking)

    @property
    def configured(self) -> bool:
        return self.missing() is None

    def check_configured(self) -> None:
        problem = self.missing()
        if problem:
            raise ConfigError(f"profile '{self.name}' is not configured: {problem}", provider=self.provider,
                              profile=self.name, hint="see the README section on profiles")

    def public(self) -> dict:
        """What routes may show: never a secret."""
        return {"name": self.name, "provider": self.provider, "url": redaction.strip_query(self.url or ""),
                "configured": self.configured, "source": self.source}


def _register_url_password(url: Optional[str]) -> None:
    """A password in a profile URL (``https://user:password@host``) is a secret like any key."""
    try:
        password = urlsplit(url or "").password
    except ValueError:
        password = None
    if password:
        redaction.register(password)


def _number(table: dict, key: str, default: Any, kind: type, lo: float, hi: float, problems: list) -> Any:
    """A number field of a profile table; a wrong type or value is reported (the profile then
    refuses to run, naming it) and the default used, so one bad field never breaks the node list."""
    value = table.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        problems.append(f"{key} must be a {'whole number' if kind is int else 'number'}, not {value!r}")
        return default
    if not lo <= value <= hi:
        problems.append(f"{key} must be between {lo:g} and {hi:g}, not {value!r}")
        return default
    return kind(value)


def _read_text(path: str) -> Optional[str]:
    try:
        return Path(path).expanduser().read_text()
    except OSError:
        return None


class Profiles:
    """Loads built-ins and ``profiles.toml`` (re-read when the file changes)."""

    def __init__(self, home: Path, env: Optional[Mapping[str, str]] = None):
        self.home = Path(home)
        self.store = CredentialStore(self.home / "credentials.json")
        self._env = env
        self._mtime: Optional[float] = None
        self._cache: dict[str, Profile] = {}
        self.file_error: Optional[str] = None

    @property
    def toml_path(self) -> Path:
        return self.home / "profiles.toml"

    def names(self) -> list[str]:
        """Built-in names first (always listed, so saved graphs validate), then file profiles."""
        names = list(BUILTIN_NAMES)
        for name in self._load():
            if name not in names:
                names.append(name)
        return names

    def get(self, name: str) -> Profile:
        profiles = self._load()
        if name not in profiles:
            raise ConfigError(f"unknown profile '{name}'", field="profile", profile=name,
                              hint="known profiles: " + ", ".join(self.names()))
        return profiles[name]

    def all(self) -> list[Profile]:
        profiles = self._load()
        return [profiles[n] for n in self.names()]

    # ---- loading
    def _load(self) -> dict[str, Profile]:
        try:
            mtime = self.toml_path.stat().st_mtime
        except OSError:
            mtime = None
        if self._cache and mtime == self._mtime:
            return self._cache
        profiles = {name: self._builtin(name) for name in BUILTIN_NAMES}
        self.file_error = None
        if mtime is not None:
            try:
                data = tomllib.loads(self.toml_path.read_text(encoding="utf-8-sig"))  # (Notepad's BOM)
            except UnicodeDecodeError:  # e.g. saved as UTF-16 or a Windows code page by an editor
                self.file_error = f"{self.toml_path}: not UTF-8 text (save it as UTF-8)"
                redaction.get_logger().warning("profiles.toml ignored: %s", self.file_error)
                data = {}
            except (OSError, tomllib.TOMLDecodeError) as e:
                self.file_error = f"{self.toml_path}: {e}"
                redaction.get_logger().warning("profiles.toml ignored: %s", self.file_error)
                data = {}
            tables = data.get("profiles") or {}
            if not isinstance(tables, dict):
                self.file_error = f"{self.toml_path}: 'profiles' must be a table of [profiles.NAME] sections"
                redaction.get_logger().warning("profiles.toml ignored: %s", self.file_error)
                tables = {}
            for name, table in tables.items():
                if isinstance(table, dict):
                    profiles[name] = self._from_table(str(name), table)
        self._cache, self._mtime = profiles, mtime
        return profiles

    def _builtin(self, name: str) -> Profile:
        spec = BUILTINS[name]
        env = self._env if self._env is not None else os.environ
        url = None
        if spec.get("url_env"):
            url = env.get(spec["url_env"]) or spec.get("url_default")
        _register_url_password(url)
        p = Profile(name=name, provider=spec["provider"], url=url.rstrip("/") if url else None,
                    max_concurrent=DEFAULT_MAX_CONCURRENT.get(spec["provider"], 4), _store=self.store,
                    _env=self._env)
        for fld, var in spec["env"].items():
            if fld in SECRET_FIELDS:
                p._secret_sources[fld] = [("env", var), ("credentials", None)]
            elif fld == "private_key_file":
                path = env.get(var)
                p.settings[fld] = path
                if path:
                    p._secret_sources["private_key"] = [("file", path)]
            else:
                p.settings[fld] = env.get(var)
        if p.provider == "tensorart":
            p._secret_sources.setdefault("private_key", []).append(("credentials", None))
        return p

    def _from_table(self, name: str, table: dict) -> Profile:
        provider = str(table.get("provider") or (name if name in BUILTINS else ""))
        if provider not in PROVIDERS:
            provider = provider or "?"
        url = table.get("url")
        problems: list[str] = []
        p = Profile(name=name, provider=provider, url=str(url).rstrip("/") if isinstance(url, str) and url else None,
                    max_concurrent=_number(table, "max_concurrent", DEFAULT_MAX_CONCURRENT.get(provider, 4), int, 1,
                                           1000, problems),
                    poll_interval_s=_number(table, "poll_interval_s", 1.0, float, 0.01, 3600.0, problems),
                    timeout_s=_number(table, "timeout_s", None, float, 1.0, 30 * 86400.0, problems),
                    source="file", _store=self.store)
        if url is not None and not isinstance(url, str):
            problems.append("url must be a text like \"http://host:8188\"")
        p.problems = problems
        _register_url_password(p.url)
        for key, value in table.items():
            if key in COMMON_FIELDS:
                continue
            if key.endswith("_env"):
                fld = key[:-4]
                if fld in SECRET_FIELDS:
                    p._secret_sources.setdefault(fld, []).append(("env", str(value)))
                else:
                    p.settings[fld] = os.environ.get(str(value))
            elif key in SECRET_FIELDS:
                p._secret_sources.setdefault(key, []).insert(0, ("literal", str(value)))
                redaction.register(str(value))
            elif key == "private_key_file":
                p.settings[key] = value
                p._secret_sources.setdefault("private_key", []).append(("file", str(value)))
            else:
                p.settings[key] = value
        for fld in SECRET_FIELDS:
            p._secret_sources.setdefault(fld, []).append(("credentials", None))
        return p

    def validate_provider(self, profile: Profile) -> None:
        if profile.provider not in PROVIDERS:
            raise ConfigError(f"profile '{profile.name}' has unknown provider '{profile.provider}'",
                              profile=profile.name, field="provider",
                              hint="provider must be one of: " + ", ".join(PROVIDERS))
