"""Every series of a CloudWatch dashboard body, checked against what AWS documents it publishes.

A dashboard accepts any namespace, metric name and dimension set and simply shows nothing for
one that no service publishes (the emulator stores the body as given), so a misspelt metric or
a missing dimension only shows as an empty graph on AWS. The table below is AWS's:

- SageMaker Pipelines, "SageMaker AI metrics: Pipelines": ``AWS/Sagemaker/ModelBuildingPipeline``,
  Execution* with ``PipelineName``; Step* with ``PipelineName`` and ``StepName``.
- SageMaker jobs, "Processing/Transform job metrics": ``/aws/sagemaker/ProcessingJobs`` CPU,
  memory, disk and ``/aws/sagemaker/TransformJobs`` CPU and memory (no disk), per ``Host``.
- EventBridge rules: ``AWS/Events`` Invocations/FailedInvocations per ``RuleName``.
- SQS: ``AWS/SQS`` queue metrics per ``QueueName``.
"""

from __future__ import annotations

import re
from typing import Any

PIPELINES = "AWS/Sagemaker/ModelBuildingPipeline"
DOCUMENTED: dict[tuple[str, str], frozenset[str]] = {
    **{
        (PIPELINES, m): frozenset({"PipelineName"})
        for m in (
            "ExecutionStarted",
            "ExecutionFailed",
            "ExecutionSucceeded",
            "ExecutionStopped",
            "ExecutionDuration",
        )
    },
    **{
        (PIPELINES, m): frozenset({"PipelineName", "StepName"})
        for m in ("StepStarted", "StepFailed", "StepSucceeded", "StepStopped", "StepDuration")
    },
    **{
        ("/aws/sagemaker/ProcessingJobs", m): frozenset({"Host"})
        for m in ("CPUUtilization", "MemoryUtilization", "DiskUtilization")
    },
    **{
        ("/aws/sagemaker/TransformJobs", m): frozenset({"Host"})
        for m in ("CPUUtilization", "MemoryUtilization")
    },
    **{("AWS/Events", m): frozenset({"RuleName"}) for m in ("Invocations", "FailedInvocations")},
    **{
        ("AWS/SQS", m): frozenset({"QueueName"})
        for m in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage")
    },
}
_SEARCH = re.compile(
    r"""SEARCH\('\{(?P<namespace>[^,}]+),(?P<dimensions>[^}]+)\} """
    r"""MetricName="(?P<metric>[^"]+)" "(?P<phrase>[^"]+)"', '\w+', \d+\)"""
)


_MATH = re.compile(r"[a-z][A-Za-z0-9_]*(?:\s*[-+*/]\s*[a-z][A-Za-z0-9_]*)+")


def series(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric series: namespace, metric, dimensions (name -> value, or the SEARCH phrase).

    Metric math over the widget's own series (``sum / count``) is no series itself: each id
    it names must be a series of the same widget, or the graph would be empty on AWS."""
    found = []
    for widget in body["widgets"]:
        entries = widget.get("properties", {}).get("metrics", [])
        ids = {
            option["id"]
            for entry in entries
            for option in entry
            if isinstance(option, dict) and "id" in option and "expression" not in option
        }
        for entry in entries:
            fields = [item for item in entry if not isinstance(item, dict)]
            options = next((item for item in entry if isinstance(item, dict)), {})
            if "expression" in options and _MATH.fullmatch(options["expression"]):
                named = set(re.findall(r"[a-z][A-Za-z0-9_]*", options["expression"]))
                if not named <= ids:
                    raise AssertionError(f"expression {options['expression']!r}: unknown ids")
                continue
            if "expression" in options:
                match = _SEARCH.fullmatch(options["expression"])
                if not match:
                    raise AssertionError(f"unreadable expression {options['expression']!r}")
                found.append(
                    {
                        "namespace": match["namespace"],
                        "metric": match["metric"],
                        "dimensions": {d: None for d in match["dimensions"].split(",")},
                        "phrase": match["phrase"],
                    }
                )
                continue
            namespace, metric, *pairs = fields
            found.append(
                {
                    "namespace": namespace,
                    "metric": metric,
                    "dimensions": dict(zip(pairs[::2], pairs[1::2], strict=True)),
                }
            )
    return found


def undocumented(
    body: dict[str, Any], also: dict[tuple[str, str], frozenset[str]] | None = None
) -> list[str]:
    """The series nobody publishes: unknown metric, or not exactly its dimensions. ``also``:
    metrics the stage makes itself (its log metric filters), with their dimensions."""
    known = {**DOCUMENTED, **(also or {})}
    problems = []
    for s in series(body):
        expected = known.get((s["namespace"], s["metric"]))
        if expected is None:
            problems.append(f"{s['namespace']} {s['metric']}: not a documented metric")
        elif set(s["dimensions"]) != expected:
            problems.append(
                f"{s['namespace']} {s['metric']}: dimensions {sorted(s['dimensions'])}, "
                f"published with {sorted(expected)}"
            )
    return problems


def search_matches(phrase: str, value: str) -> bool:
    """Whether a SEARCH phrase in double quotes matches a dimension value.

    CloudWatch splits both on non-alphanumeric characters (camel case aside) and a quoted
    phrase matches the same tokens, consecutively, anywhere in the value.
    """
    tokens = re.findall(r"[A-Za-z0-9]+", phrase.lower())
    words = re.findall(r"[A-Za-z0-9]+", value.lower())
    return any(words[i : i + len(tokens)] == tokens for i in range(len(words) - len(tokens) + 1))
