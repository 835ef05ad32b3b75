"""Resolve the expressions of a pipeline definition: parameters, joins, execution variables
and step properties, and order the steps by what they depend on.

SageMaker evaluates these on the service side; local mode evaluates the same JSON here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


class DefinitionError(Exception):
    """The definition cannot run: unknown parameter, step, property or function."""


@dataclass
class Context:
    """What expressions can refer to while an execution runs."""

    parameters: dict[str, Any]
    execution: dict[str, Any]
    # step name -> its properties (the job's describe-like document)
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)


PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")


def resolve_parameters(definition: dict, overrides: dict[str, Any]) -> dict[str, Any]:
    """Declared parameters with their defaults, overridden and typed; unknown names fail."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise DefinitionError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; "
            f"declared: {', '.join(sorted(declared))}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in overrides:
            value = overrides[name]
        elif "DefaultValue" in spec:
            value = spec["DefaultValue"]
        else:
            raise DefinitionError(f"pipeline parameter {name} has no default: pass a value")
        values[name] = _typed(name, spec.get("Type", "String"), value)
        allowed = spec.get("EnumValues")
        if allowed and values[name] not in allowed:
            raise DefinitionError(
                f"pipeline parameter {name} must be one of {', '.join(map(str, allowed))}, "
                f"got {value!r}"
            )
    return values


def _typed(name: str, kind: str, value: Any) -> Any:
    try:
        if kind == "Integer":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            return int(float(value))
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
            raise ValueError
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(float("inf"))
        raise DefinitionError(f"pipeline parameter {name} must be {kind}, got {value!r}") from None
    return str(value)


def resolve(value: Any, context: Context) -> Any:
    """Evaluate every expression inside ``value`` (recursively)."""
    if isinstance(value, list):
        return [resolve(item, context) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return _get(value["Get"], context)
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        return str(spec.get("On", "")).join(
            _as_text(resolve(item, context)) for item in spec["Values"]
        )
    functions = [key for key in value if key.startswith("Std:")]
    if functions:
        raise DefinitionError(f"function {functions[0]} is not supported in local mode")
    return {key: resolve(item, context) for key, item in value.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _get(reference: str, context: Context) -> Any:
    head, _, rest = reference.partition(".")
    if head == "Parameters":
        if rest not in context.parameters:
            raise DefinitionError(f"reference to undeclared parameter {rest!r}")
        return context.parameters[rest]
    if head == "Execution":
        if rest not in context.execution:
            raise DefinitionError(f"execution variable {rest!r} is not available")
        return context.execution[rest]
    if head == "Steps":
        step, _, path = rest.partition(".")
        if step not in context.steps:
            raise DefinitionError(f"property of step {step!r} read before that step ran")
        return property_path(context.steps[step], path, reference)
    raise DefinitionError(f"cannot resolve {reference!r}")


_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]")
# A list indexed by name is matched on the field SageMaker uses as that item's name.
_NAME_FIELDS = ("OutputName", "InputName", "ChannelName", "Name", "Key")


def property_path(document: Any, path: str, reference: str) -> Any:
    """Follow ``Outputs['inference'].S3Output.S3Uri``-style paths through ``document``."""
    node, position = document, 0
    while position < len(path):
        match = _TOKEN.match(path, position)
        if not match:
            raise DefinitionError(f"cannot parse property path {reference!r}")
        position = match.end()
        attribute, index, name = match.groups()
        try:
            if attribute is not None:
                node = node[attribute]
            elif index is not None:
                node = node[int(index)]
            else:
                node = next(
                    item
                    for item in node
                    if any(item.get(field_name) == name for field_name in _NAME_FIELDS)
                )
        except (KeyError, IndexError, TypeError, StopIteration):
            raise DefinitionError(f"property {reference!r} does not exist") from None
    return node


def step_dependencies(step: dict) -> set[str]:
    """Steps this one reads properties of, plus its explicit ``DependsOn``."""
    found = set(step.get("DependsOn", []))

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            reference = value.get("Get")
            if isinstance(reference, str) and reference.startswith("Steps."):
                found.add(reference.split(".")[1])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(step.get("Arguments", {}))
    return found


def execution_order(definition: dict) -> list[dict]:
    """Steps in an order that respects every dependency; cycles and unknown steps fail."""
    steps = {step["Name"]: step for step in definition.get("Steps", [])}
    needs = {name: step_dependencies(step) for name, step in steps.items()}
    for name, dependencies in needs.items():
        missing = sorted(dependencies - set(steps))
        if missing:
            raise DefinitionError(f"step {name!r} depends on unknown step(s) {missing}")
    ordered: list[dict] = []
    done: set[str] = set()
    while len(ordered) < len(steps):
        ready = [n for n in steps if n not in done and needs[n] <= done]
        if not ready:
            raise DefinitionError(f"steps {sorted(set(steps) - done)} depend on each other")
        for name in ready:  # definition order among steps that are ready together
            ordered.append(steps[name])
            done.add(name)
    return ordered
