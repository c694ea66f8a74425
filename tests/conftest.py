"""Session fixtures shared by the end-to-end and browser suites: ONE real remote ComfyUI, the
provider fakes on a background event loop, and ONE real local ComfyUI with this pack whose built-in
profiles point at them through the documented environment variables (design §3)."""
from __future__ import annotations

import asyncio
import importlib
import threading
from pathlib import Path
from typing import Any

import pytest

CANARY = "CANARY-e2e-token-51d0c3a9e7"
FLEET_PROVIDERS = ("runninghub", "tensorart", "speedpix", "nextgpu")
REPO = Path(__file__).resolve().parents[1]


class Fleet:
    """The provider fakes (via their contract cases) on their own loop in a thread, so they keep
    answering while tests block or run their own loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-fleet", daemon=True)
        self.thread.start()
        self.cases: dict[str, Any] = {}

    def run(self, coro, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def wait(self, coro) -> Any:
        """Await a coroutine on the fakes' loop from a test's own loop (e.g. ``fake.seen(...)``)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    def start(self, providers=FLEET_PROVIDERS) -> None:
        for name in providers:
            mod = importlib.import_module(f"comfyui_remote.tests.contract.case_{name}")
            case = type(mod.CASE)()
            self.run(case.start())
            self.cases[name] = case
        from .fakes.comfyui import FakeComfyUI

        self.comfy = FakeComfyUI()  # a ComfyUI whose faults the end-to-end tests can switch
        self.run(self.comfy.start())

    def profiles_toml(self) -> str:
        """File profiles for the local ComfyUI: ``faulty`` is a ComfyUI server with fault knobs."""
        return (f'[profiles.faulty]\nprovider = "comfyui"\nurl = "{self.comfy.url}"\npoll_interval_s = 0.2\n'
                f'max_concurrent = 1\n')

    def env(self, key: str) -> dict:
        """Environment variables of the built-in profiles, pointing at the fakes."""
        from comfyui_remote.engine.profiles import BUILTINS

        env: dict = {}
        for name, case in self.cases.items():
            table = case.profile(key)
            spec = BUILTINS[name]
            for field, value in table.items():
                if field == "url":
                    env[spec["url_env"]] = str(value)
                elif field in spec["env"]:
                    env[spec["env"][field]] = str(value)
        return env

    def stop(self) -> None:
        try:
            self.run(self.comfy.stop(), 10)
        except Exception:
            pass
        for case in self.cases.values():
            try:
                self.run(case.stop(), 10)
            except Exception:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def fleet():
    f = Fleet()
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="session")
def remote_comfy():
    from .e2e import harness

    why = harness.available()
    if why:
        pytest.skip(f"real ComfyUI not available: {why}")
    inst = harness.start((REPO / "tests" / "remote_nodes", "sandbox_remote_nodes"))
    yield inst
    inst.stop()


@pytest.fixture(scope="session")
def comfy_proxy(remote_comfy, tmp_path_factory):
    """The real comfy-api-proxy (Comfy API v2, self-hosted) in front of ``remote_comfy``."""
    from .e2e import comfy_proxy as proxy

    why = proxy.available()
    if why:
        pytest.skip(why)
    inst = proxy.start(remote_comfy.url, tmp_path_factory.mktemp("comfy_proxy"))
    yield inst
    inst.stop()


def make_home(home: Path) -> Path:
    """A COMFYUI_REMOTE_HOME with the sandbox workflows in ``workflows/``."""
    (home / "workflows").mkdir()
    for wf in (REPO / "providers" / "sandbox_workflows").glob("*.json"):
        (home / "workflows" / wf.name).write_bytes(wf.read_bytes())
    return home


@pytest.fixture(scope="session")
def remote_home(tmp_path_factory):
    return make_home(tmp_path_factory.mktemp("remote_home"))


def start_local(remote_comfy, fleet, home: Path, pack: Path = REPO, main_args: tuple = ()):
    """A local ComfyUI with the pack at ``pack`` whose built-in profiles point at the fakes and
    the remote ComfyUI; ``main_args`` go to its main.py (e.g. another frontend)."""
    from .e2e import harness

    (home / "profiles.toml").write_text(fleet.profiles_toml())
    env = {"COMFYUI_REMOTE_HOME": str(home), "COMFYUI_REMOTE_URL": remote_comfy.url,
           "COMFYUI_REMOTE_TOKEN": CANARY, **fleet.env(CANARY)}
    return harness.start((pack, "comfyui_remote"), (REPO / "tests" / "local_nodes", "test_local_nodes"),
                         env_extra=env, main_args=main_args)


@pytest.fixture(scope="session")
def local_comfy(remote_comfy, fleet, remote_home):
    inst = start_local(remote_comfy, fleet, remote_home)
    yield inst
    inst.stop()
