"""What a sandbox node type is: its ``/object_info`` definition and its ``run`` (``sandbox/nodes.py``,
``sandbox/media_nodes.py``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

SAVE_PREFIX_TOOLTIP = ("The prefix for the file to save. This may include formatting information such as "
                       "%date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes.")


@dataclass
class NodeType:
    name: str
    display_name: str
    category: str
    required: dict
    outputs: tuple
    run: Callable[..., Awaitable[tuple]]
    optional: dict = field(default_factory=dict)
    hidden: dict = field(default_factory=dict)
    output_node: bool = False
    description: str = ""
    python_module: str = "nodes"
    output_names: Optional[tuple] = None
    validate: Optional[Callable[..., Any]] = None  # VALIDATE_INPUTS(ctx, **inputs) -> True | str
    validate_inputs: tuple = ()
    never_cached: bool = False  # IS_CHANGED returns NaN
    is_changed: Optional[Callable[..., Any]] = None

    def input_types(self, ctx: Any) -> dict:
        out: dict = {"required": {k: _spec(v, ctx) for k, v in self.required.items()}}
        if self.optional:
            out["optional"] = {k: _spec(v, ctx) for k, v in self.optional.items()}
        if self.hidden:
            out["hidden"] = dict(self.hidden)
        return out

    def info(self, ctx: Any) -> dict:
        types = self.input_types(ctx)
        return {
            "input": types,
            "input_order": {k: list(v) for k, v in types.items()},
            "output": list(self.outputs),
            "output_is_list": [False] * len(self.outputs),
            "output_name": list(self.output_names or self.outputs),
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "python_module": self.python_module,
            "category": self.category,
            "output_node": self.output_node,
        }


def _spec(value: Any, ctx: Any) -> list:
    """An input spec as JSON: ``["INT", {...}]``; a callable gives a dynamic one (LoadImage)."""
    if callable(value):
        value = value(ctx)
    return [v if not isinstance(v, tuple) else list(v) for v in value]
