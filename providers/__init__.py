"""Provider registry: provider id → module. Each module exports ``PROVIDER`` (a Provider subclass).
Modules are imported lazily so that a provider's optional dependency never breaks the pack."""
from __future__ import annotations

import importlib

from .base import Provider

PROVIDER_IDS = ("sandbox", "comfyui", "runninghub", "tensorart", "speedpix", "nextgpu", "comfycloud")


def provider_class(provider_id: str) -> type[Provider]:
    if provider_id not in PROVIDER_IDS:
        raise KeyError(provider_id)
    module = importlib.import_module(f".{provider_id}", __name__)
    return module.PROVIDER
