"""The bundled sandbox: a small ComfyUI-compatible server that runs in-process for the ``sandbox``
profile (no key, no network, no GPU) — see ``server.py`` and its node types in ``nodes.py``."""
