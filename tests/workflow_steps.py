"""Finding a workflow job's steps in the workflow tests: by name, script or action."""

from __future__ import annotations

from typing import Any


def step(job: dict[str, Any], predicate: Any, what: str) -> tuple[int, dict[str, Any]]:
    """The one step of ``job`` that ``predicate`` accepts, with its index."""
    found = [(index, s) for index, s in enumerate(job["steps"]) if predicate(s)]
    assert len(found) == 1, f"expected exactly one step that {what}, found {len(found)}"
    return found[0]


def named(text: str) -> Any:
    return lambda s: text in s.get("name", "")


def runs(text: str) -> Any:
    return lambda s: text in s.get("run", "")


def uses(action: str) -> Any:
    return lambda s: s.get("uses", "").startswith(f"{action}@")
