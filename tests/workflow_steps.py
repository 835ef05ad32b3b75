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


def assert_project_toolchain(job: dict[str, Any]) -> None:
    """The job installs what make install and the project's pins give: checkout without
    credentials, Python 3.12 (the runtime twin's) and 3.11, Terraform 1.11.4 unwrapped."""
    _, checkout = step(job, uses("actions/checkout"), "checks out")
    assert checkout["with"]["persist-credentials"] is False
    _, python = step(job, uses("actions/setup-python"), "sets up Python")
    assert python["with"]["python-version"].split() == ["3.12", "3.11"]
    step(job, lambda s: s.get("run", "").strip() == "make install", "runs make install")
    _, terraform = step(job, uses("hashicorp/setup-terraform"), "sets up Terraform")
    assert terraform["with"] == {"terraform_version": "1.11.4", "terraform_wrapper": False}
