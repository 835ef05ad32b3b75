"""CloudWatch Logs JSON metric filter patterns, evaluated the way AWS documents them.

The emulator stores metric filters but never applies them, and CloudWatch Logs'
``TestMetricFilter`` is not emulated: this is the documented behaviour ("Filter pattern
syntax for metric filters", JSON log events) for the subset the stage template uses, so a
test can hold the template's patterns against the exact line ``preprocess.py`` prints, and
local mode can say what a stage alarm would do with the lines a run printed
(``local_mode/alarms.py``).

- A pattern ``{ <condition> && <condition> ... }`` matches a log event that is a JSON object
  in which every condition holds; any other event never matches.
- ``$.field = "text"`` / ``!=``: string comparison; ``$.field >= 0`` (``= != < <= > >=``
  with a number): numeric comparison, false when the field is missing or not a number.
- ``$.field = *``: the field is present (the CDK's ``FilterPattern.exists``).
- A metric value ``$.field`` is that field's number, and the field must be matched by the
  pattern ("If you are using a field value, the field value must have been matched using
  the pattern", the CDK's MetricFilter reference): a selector the pattern does not test is
  refused. The filter publishes nothing when the event does not match.

Anything else (``||``, parentheses, wildcards in text, arrays, IS NULL) is refused, not
guessed.
"""

from __future__ import annotations

import json
import operator
import re
from typing import Any

_CONDITION = re.compile(
    r"\$\.(?P<path>[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*)\s*(?P<op>!=|>=|<=|=|>|<)\s*"
    r'(?P<value>"[^"*]*"|\*|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)'
)
_NUMERIC = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt,
    ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _field(event: dict[str, Any], path: str) -> Any:
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _conditions(pattern: str) -> list[re.Match[str]]:
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"not a JSON filter pattern: {pattern!r}")
    inner = text[1:-1]
    if "||" in inner or "(" in inner:
        raise ValueError(f"unsupported (|| or parentheses) in {pattern!r}")
    found = []
    for part in inner.split("&&"):
        match = _CONDITION.fullmatch(part.strip())
        if match is None:
            raise ValueError(f"unsupported condition {part.strip()!r} in {pattern!r}")
        found.append(match)
    return found


def matches(pattern: str, message: str) -> bool:
    """Whether the log event ``message`` matches the JSON filter ``pattern``."""
    conditions = _conditions(pattern)
    try:
        event = json.loads(message)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    for condition in conditions:
        actual, op, expected = _field(event, condition["path"]), condition["op"], condition["value"]
        if expected == "*":
            if op != "=":
                raise ValueError(f"a wildcard compares with = only: {condition.group(0)!r}")
            if actual is None:
                return False
        elif expected.startswith('"'):
            if op not in ("=", "!="):
                raise ValueError(f"a string compares with = or != only: {condition.group(0)!r}")
            if not isinstance(actual, str) or (actual == expected[1:-1]) != (op == "="):
                return False
        elif not _is_number(actual) or not _NUMERIC[op](actual, float(expected)):
            return False
    return True


def metric_value(pattern: str, selector: str, message: str) -> float | None:
    """The number a metric transformation's ``metricValue`` selector (``$.field``) publishes
    for ``message`` under ``pattern``: None when the event does not match."""
    if not re.fullmatch(r"\$\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*", selector):
        raise ValueError(f"unsupported metric value {selector!r}")
    tested = {c["path"] for c in _conditions(pattern) if not c["value"].startswith('"')}
    # (a wildcard, "= *", matches the field whatever it holds; a non-number publishes nothing)
    if selector[2:] not in tested:
        raise ValueError(f"metric value {selector} is not matched by {pattern!r}")
    if not matches(pattern, message):
        return None
    value = _field(json.loads(message), selector[2:])
    return float(value) if _is_number(value) else None
