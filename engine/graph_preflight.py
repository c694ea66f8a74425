"""Pre-flight of "Run a part of my graph remotely" (design §4), before anything is paid: can the
profile take an API-format graph at all, and does its remote know every node type of the graph
(the provider's own ``validate``: ``/object_info`` for comfyui and sandbox, the service's check
where it has one; ``Capabilities.node_types`` says which). One message lists everything that is
missing; where a service cannot list its node types the answer says so instead of claiming a check."""
from __future__ import annotations

import asyncio
from typing import Any

from ..providers.base import RemoteError, SubmitSpec
from . import redaction

CHECK_TIMEOUT_S = 30
# providers addressed by a published workflow id or app title only: they never take a graph
NO_GRAPH = {"speedpix": "runs published workflows by id", "nextgpu": "runs published apps by title"}
TAKES_GRAPH = "a ComfyUI server (comfyui, sandbox), Comfy Cloud, RunningHub with a base workflow, or Tensor.Art"


def refusal(profile: Any) -> str | None:
    """Why ``profile`` cannot take a graph, or None."""
    why = NO_GRAPH.get(profile.provider)
    if why:
        return (f"profile {profile.name!r} ({profile.provider}) {why} and cannot run a part of your graph; "
                f"choose a profile of {TAKES_GRAPH}")
    if profile.provider == "runninghub" and not str(profile.get("base_workflow_id") or "").strip():
        return (f"profile {profile.name!r} (runninghub) runs a graph only on a base workflow: set "
                "RUNNINGHUB_BASE_WORKFLOW_ID or base_workflow_id in its table of profiles.toml")
    return None


def passed(name: str, provider: Any) -> tuple[str, str]:
    """(how the node types were checked, what to tell the user) once validate() passed."""
    how = getattr(provider.capabilities, "node_types", "none")
    if how == "listed":
        return how, f"[{name}] the remote has every node type of the graph"
    if how == "service":
        return how, (f"[{name}] {provider.label} checked the graph and accepted it (it does not list node types: "
                     "one it lacks is refused when the task is submitted, before anything is paid)")
    return how, (f"[{name}] {provider.label} cannot list its node types before a run, so they were not checked "
                 "here: one it lacks is refused when the task is submitted, before anything is paid")


async def check_graph(manager: Any, name: str, workflow: str) -> tuple[bool, str, str | None]:
    """(ok, message, how node types were checked: listed|service|none) for running API-format
    ``workflow`` on profile ``name``."""
    try:
        profile = manager.profiles.get(name)
        why = refusal(profile)
        if why:
            return False, why, None
        profile.check_configured()
        provider = manager.provider(profile)
        await asyncio.wait_for(provider.validate(SubmitSpec(workflow=workflow, profile=name)), CHECK_TIMEOUT_S)
        how, message = passed(name, provider)
        return True, message, how
    except RemoteError as e:
        return False, redaction.scrub(str(e)), None
    except asyncio.TimeoutError:
        return False, f"[{name}] the remote did not answer the check within {CHECK_TIMEOUT_S} s", None
