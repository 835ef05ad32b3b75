"""What a run cost: each job's instance-seconds times the on-demand price of its instances.

SageMaker bills a Processing or Transform job per second of instance time (AWS's pricing
page: "billed by the second"), from the job's start to its end on each instance. So a step's
cost is ``instance count x (end - start) x USD per hour / 3600``, read from what SageMaker
returns about the job (``DescribeProcessingJob``: ``ProcessingStartTime`` /
``ProcessingEndTime`` and ``ProcessingResources.ClusterConfig``; ``DescribeTransformJob``:
``TransformStartTime`` / ``TransformEndTime`` and ``TransformResources``), the jobs found
from the execution's steps (``ListPipelineExecutionSteps``' ``Metadata.ProcessingJob.Arn`` /
``Metadata.TransformJob.Arn``). Local mode's execution record holds the same descriptions
(each step's ``Job``), so a local run's cost is computed by the same code.

Prices come from the table shipped with the template (``stage_runtime/prices.py``: its date,
source and whether it was verified travel with every cost) and the stage's own
``instance_prices`` over it; nothing is fetched at run time. A price the table lacks, or a
job SageMaker does not describe fully, makes that step's cost (and the total) null with the
reason: a cost is never guessed, and never stops a marker from being completed.

Unproven on AWS (docs/operations.md, "Cost per run"): whether the seconds SageMaker bills
are exactly start-to-end of the description (e.g. the image download before the start
time), and the shipped prices themselves (unverified).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from stage_runtime import prices

if TYPE_CHECKING:
    from mypy_boto3_sagemaker import SageMakerClient

CURRENCY = "USD"
# the stage's prices over the shipped table: JSON {"ml.m5.xlarge": 0.23, ...} (USD per hour)
PRICES_VARIABLE = "INSTANCE_PRICES"
# a run-cost line's event name (the stage's metric filter matches it)
EVENT = "run-cost"


@dataclass(frozen=True)
class JobUsage:
    """One step's job: what ran, on what, for how long (or why that is not known)."""

    step: str
    job: prices.Job
    job_name: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    seconds: float | None = None
    problem: str | None = None


def _time(value: Any) -> datetime | None:
    """A description's timestamp: botocore's datetime, or the ISO text of a local record."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value)
    return None


def _usage(
    step: str, job: prices.Job, name: Any, resources: Any, start: Any, end: Any, status: Any
) -> JobUsage:
    """A job's usage from the fields of its description (shared by both job kinds)."""
    resources = resources if isinstance(resources, Mapping) else {}
    # flexible instance configurations name what SageMaker picked in Selected*
    kind = resources.get("SelectedInstanceType") or resources.get("InstanceType")
    count = resources.get("SelectedInstanceCount") or resources.get("InstanceCount")
    began, ended = _time(start), _time(end)
    if not kind or not isinstance(count, int):
        missing = "the job's description names no instance type and count"
        return JobUsage(step, job, name, kind, count, problem=missing)
    if began is None:  # never started on an instance (refused, stopped while pending)
        return JobUsage(step, job, name, kind, count, 0.0)
    if ended is None:
        return JobUsage(step, job, name, kind, count, problem=f"the job has not ended ({status})")
    return JobUsage(step, job, name, kind, count, max(0.0, (ended - began).total_seconds()))


def processing_usage(step: str, described: Mapping[str, Any]) -> JobUsage:
    """From ``DescribeProcessingJob``'s answer."""
    cluster = (described.get("ProcessingResources") or {}).get("ClusterConfig")
    return _usage(
        step, "processing", described.get("ProcessingJobName"), cluster,
        described.get("ProcessingStartTime"), described.get("ProcessingEndTime"),
        described.get("ProcessingJobStatus"),
    )  # fmt: skip


def transform_usage(step: str, described: Mapping[str, Any]) -> JobUsage:
    """From ``DescribeTransformJob``'s answer."""
    return _usage(
        step, "transform", described.get("TransformJobName"), described.get("TransformResources"),
        described.get("TransformStartTime"), described.get("TransformEndTime"),
        described.get("TransformJobStatus"),
    )  # fmt: skip


def job_name_of(arn: str) -> str:
    """``arn:...:processing-job/<name>`` -> ``<name>`` (what the Describe calls take)."""
    return arn.rsplit("/", 1)[-1]


def job_usages(sagemaker: SageMakerClient, execution_arn: str) -> list[JobUsage]:
    """Each job step of the execution, described by SageMaker (steps without a job, e.g. a
    condition, cost nothing here)."""
    usages = []
    pages = sagemaker.get_paginator("list_pipeline_execution_steps").paginate(
        PipelineExecutionArn=execution_arn, SortOrder="Ascending"
    )
    for page in pages:
        for step in page["PipelineExecutionSteps"]:
            metadata = step.get("Metadata", {})
            name = step.get("StepName", "?")
            if "ProcessingJob" in metadata:
                job = job_name_of(metadata["ProcessingJob"]["Arn"])
                described = sagemaker.describe_processing_job(ProcessingJobName=job)
                usages.append(processing_usage(name, described))
            elif "TransformJob" in metadata:
                job = job_name_of(metadata["TransformJob"]["Arn"])
                transform = sagemaker.describe_transform_job(TransformJobName=job)
                usages.append(transform_usage(name, transform))
    return usages


def local_usages(record: Mapping[str, Any]) -> list[JobUsage]:
    """Each step of local mode's execution record, from the description it keeps (``Job``)."""
    usages = []
    for step in record.get("Steps", []):
        described = step.get("Job")
        if not isinstance(described, Mapping):
            continue  # the step never became a job (its arguments did not resolve)
        if step.get("StepType") == "Processing":
            usages.append(processing_usage(step["StepName"], described))
        elif step.get("StepType") == "Transform":
            usages.append(transform_usage(step["StepName"], described))
    return usages


def _round(usd: float) -> float:
    return round(usd, 6)


def cost(
    usages: Iterable[JobUsage], table: dict[str, Any], rows_scored: int | None = None
) -> dict[str, Any]:
    """The run's cost: per step, the total and per 1,000 rows scored, with the price table's
    region, date, source and verification. A step whose cost is unknown has ``usd`` null and
    its ``problem``; then the total is null too, with the reasons in ``unknown``."""
    steps, problems = [], []
    for usage in usages:
        step: dict[str, Any] = {
            "step": usage.step,
            "job": usage.job,
            "job_name": usage.job_name,
            "instance_type": usage.instance_type,
            "instance_count": usage.instance_count,
            "seconds": usage.seconds,
            "instance_seconds": None,
            "usd_per_hour": None,
            "usd": None,
        }
        problem = usage.problem
        if problem is None and usage.instance_type and usage.seconds is not None:
            step["instance_seconds"] = round(usage.seconds * (usage.instance_count or 0), 3)
            try:
                per_hour = prices.price_per_hour(usage.instance_type, usage.job, table)
            except prices.UnknownPrice as error:
                problem = (
                    f"no {usage.job} price for {usage.instance_type} in {error.path}: set it in "
                    f'the stage file\'s instance_prices (e.g. {{"{usage.instance_type}": 0.5}}, '
                    "USD per hour)"
                )
            else:
                step["usd_per_hour"] = per_hour
                step["usd"] = _round(step["instance_seconds"] * per_hour / 3600)
                step["price_verified"] = prices.verified(usage.instance_type, table)
        if problem:
            step["problem"] = problem
            problems.append(f"{usage.step}: {problem}")
        steps.append(step)
    total = None if problems else _round(sum(s["usd"] for s in steps))
    per_1000 = _round(total * 1000 / rows_scored) if total is not None and rows_scored else None
    result: dict[str, Any] = {
        "currency": CURRENCY,
        "total_usd": total,
        "rows_scored": rows_scored,
        "cost_per_1000_rows": per_1000,
        "steps": steps,
        "prices": price_source(table),
    }
    if problems:
        result["unknown"] = "; ".join(problems)
    return result


def price_source(table: dict[str, Any]) -> dict[str, Any]:
    """What a cost's prices rest on: the table's region, date, source, whether verified."""
    return {
        "table": table.get("path"),
        "region": table.get("region"),
        "retrieved": table.get("retrieved"),
        "source": table.get("source"),
        "verified": bool(table.get("verified")),
        "stage_prices": table.get("overridden", []),
    }


def unknown_cost(reason: str, table: dict[str, Any]) -> dict[str, Any]:
    """A cost that could not be computed at all (the steps could not be read)."""
    return {
        "currency": CURRENCY,
        "total_usd": None,
        "rows_scored": None,
        "cost_per_1000_rows": None,
        "steps": [],
        "prices": price_source(table),
        "unknown": reason,
    }


def parse_instance_prices(text: str | None, name: str = PRICES_VARIABLE) -> dict[str, float]:
    """The stage's ``instance_prices`` as the functions get it (JSON in ``name``); a
    ``ValueError`` naming the variable when it is not an object of positive numbers."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{name} is not JSON: {text[:80]!r}") from None
    problem = instance_prices_problem(value)
    if problem:
        raise ValueError(f"{name}: {problem}")
    return {str(k): float(v) for k, v in value.items()}


def instance_prices_problem(value: Any, setting: str = "instance_prices") -> str | None:
    """Why ``value`` is not a map of instance type -> USD per hour (> 0), or None; the same
    rule as the template's variable validation."""
    if not isinstance(value, Mapping):
        return f'{setting} must be an object like {{"ml.m5.xlarge": 0.23}} (USD per hour)'
    for kind, usd in value.items():
        if not isinstance(kind, str) or not _instance_name(kind):
            return f"{setting}: {kind!r} is not an instance type like ml.m5.xlarge"
        if isinstance(usd, bool) or not isinstance(usd, int | float) or not 0 < usd < 1000:
            return (
                f"{setting}: {kind} must be a price in USD per instance-hour, more than 0 and "
                f"less than 1000, got {usd!r}"
            )
    return None


def _instance_name(kind: str) -> bool:
    """The template's rule: ``^ml\\.[a-z0-9]+\\.[a-z0-9]+$``."""
    return re.fullmatch(r"ml\.[a-z0-9]+\.[a-z0-9]+", kind) is not None


def stage_table(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The shipped table with the stage's ``INSTANCE_PRICES`` over it (the functions')."""
    env = os.environ if environ is None else environ
    return prices.with_overrides(
        prices.load_table(), parse_instance_prices(env.get(PRICES_VARIABLE))
    )


def sagemaker_cost_of(
    sagemaker: SageMakerClient, table: dict[str, Any]
) -> Callable[[str, int | None], dict[str, Any]]:
    """(execution ARN, rows scored) -> the run's cost, from what SageMaker says of its jobs
    (``partitions.CostOf``). An AWS error reading them is a cost unknown with the reason,
    never an error: the marker is completed all the same."""

    def cost_of(execution_arn: str, rows_scored: int | None) -> dict[str, Any]:
        try:
            usages = job_usages(sagemaker, execution_arn)
        except (ClientError, BotoCoreError) as error:
            return unknown_cost(f"the run's jobs could not be read: {error}", table)
        return cost(usages, table, rows_scored)

    return cost_of


def table_of(instance_prices: Mapping[str, float] | None) -> dict[str, Any]:
    """The shipped table with a stage's ``instance_prices`` (its tfvars') over it."""
    return prices.with_overrides(prices.load_table(), dict(instance_prices or {}))


def summary(result: Mapping[str, Any] | None) -> str:
    """One line for people: ``cost USD 0.0123 (USD 0.0041 per 1,000 rows; prices of
    2026-12-07, unverified)``, or why it is unknown."""
    if not result:
        return "cost not recorded"
    source = result.get("prices", {})
    basis = f"prices of {source.get('retrieved')}" + (
        "" if source.get("verified") else ", unverified"
    )
    if source.get("stage_prices"):
        basis += f"; the stage's own for {', '.join(source['stage_prices'])}"
    if result.get("total_usd") is None:
        return f"cost unknown ({result.get('unknown')})"
    per = result.get("cost_per_1000_rows")
    rows = f"USD {per:.6f} per 1,000 rows; " if per is not None else ""
    return f"cost USD {result['total_usd']:.6f} ({rows}{basis})"


def metric_line(pipeline: str, day: str | None, result: Mapping[str, Any]) -> str:
    """The JSON line the stage's metric filter reads: ``RunCost`` and ``CostPer1000Rows``
    (absent when unknown: a filter publishes nothing for a field that is not there)."""
    line: dict[str, Any] = {"event": EVENT, "pipeline": pipeline, "date": day}
    if result.get("total_usd") is not None:
        line["cost_usd"] = result["total_usd"]
    if result.get("cost_per_1000_rows") is not None:
        line["cost_per_1000_rows"] = result["cost_per_1000_rows"]
    return json.dumps(line, separators=(",", ":"))
