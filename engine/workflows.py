"""The ``workflow`` widget: file names resolved, labels for the panel, and the pay-once reuse key."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ..providers.base import Override, RejectedInput
from .profiles import Profile


def resolve_workflow(workflow: str, profile: Profile, home: Path, sandbox_dir: Optional[Path]) -> tuple[str, str]:
    """A workflow widget → (text sent, short label). A bare ``*.json`` name is read from
    ``$COMFYUI_REMOTE_HOME/workflows/`` (the sandbox also ships its own)."""
    text = (workflow or "").strip()
    if not text:
        raise RejectedInput("the workflow is empty", field="workflow", provider=profile.provider,
                            profile=profile.name, hint=workflow_hint(profile.provider))
    if "\n" not in text and text.lower().endswith(".json") and not text.startswith("{"):
        name = Path(text).name
        dirs = [home / "workflows"]
        if profile.provider == "sandbox" and sandbox_dir is not None:
            dirs.append(sandbox_dir)
        for d in dirs:
            path = d / name
            try:
                found = path.is_file()
            except (OSError, ValueError):  # a name too long or with a NUL: no such workflow file
                continue
            if found:
                try:
                    return path.read_text(encoding="utf-8-sig"), name
                except (OSError, ValueError) as e:
                    why = "is not UTF-8 text" if isinstance(e, ValueError) else \
                        f"cannot be read ({getattr(e, 'strerror', None) or e.__class__.__name__})"
                    raise RejectedInput(f"workflow file {name!r} {why}", field="workflow", provider=profile.provider,
                                        profile=profile.name, hint=f"save {path} as UTF-8 JSON") from None
        raise RejectedInput(f"workflow file {name!r} not found", field="workflow", provider=profile.provider,
                            profile=profile.name, hint=f"put it in {dirs[0]}" + (
                                f" (the sandbox ships: {', '.join(sorted(p.name for p in dirs[1].glob('*.json')))})"
                                if len(dirs) > 1 else ""))
    if text.startswith("{"):
        return text, graph_label(text)
    return text, text[:80]


NOT_RESULT_SETTINGS = frozenset({"max_rps", "jobs_api", "auth_header", "auth_scheme", "image_upload_ttl_s"})


def reuse_key(profile: Profile, text: str, overrides: list[Override]) -> str:
    try:  # JSON graphs: key on content, not formatting
        canon = json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canon = text
    items = [(o.target.strip(), o.kind, o.sha256 if o.is_file else repr(o.value)) for o in overrides]
    # settings that change what the service makes (RunningHub's instance_type or base_workflow_id,
    # SpeedPix's resource_config_id, nextGPU's image_count, …) are part of the key; pacing is not
    settings = {k: repr(v) for k, v in sorted((getattr(profile, "settings", None) or {}).items())
                if k not in NOT_RESULT_SETTINGS and v not in (None, "")}
    blob = json.dumps([profile.name, profile.provider, profile.url, canon, items, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def workflow_hint(provider: str) -> str:
    return {
        "runninghub": "give a workflow id, app:<webappId>, or an API-format graph",
        "tensorart": "give a template id or an API-format graph",
        "speedpix": "give a workflow_id, optionally with @alias or #version",
        "nextgpu": "give the app title",
    }.get(provider, "paste an API-format graph (Workflow → Export (API)) or a file name from the workflows folder")


def graph_label(text: str) -> str:
    try:
        graph = json.loads(text)
        if isinstance(graph, dict) and isinstance(graph.get("prompt"), dict):
            graph = graph["prompt"]
        classes = [v.get("class_type", "?") for v in graph.values() if isinstance(v, dict)]
        return f"graph of {len(classes)} nodes ({', '.join(sorted(set(classes))[:3])}…)"
    except Exception:
        return "graph"
