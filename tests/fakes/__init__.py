"""Faithful fake servers of every provider, built on ``toolkit``. ``FAKES`` maps a provider id to
``module:Class``; ``python -m tests.fakes NAME --port N`` runs one on its own."""
from __future__ import annotations

import importlib
from typing import Any

FAKES = {
    "comfyui": "comfyui:FakeComfyUI",
    "runninghub": "runninghub:FakeRunningHub",
    "tensorart": "tensorart:FakeTensorArt",
    "speedpix": "speedpix:FakeSpeedPix",
    "nextgpu": "nextgpu:FakeNextGPU",
    "comfycloud": "comfycloud:FakeComfyCloud",
}


def fake_class(name: str) -> Any:
    module, _, cls = FAKES[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)
