"""What a backfill (``run_pipeline --stage S --date D --until E``) is projected to cost, before
any run starts, and the stage's limit on it (``max_backfill_cost_usd``).

The days it would score are the range's days whose marker does not say ``Succeeded`` (all of
them with ``--force``) and that have no run executing. Each is projected at the cost of the
stage's recent scored days, from their markers (the mean of the newest ``RECENT_DAYS`` whose
cost is known: what a day of this stage has been costing); a stage with none yet is
projected with the capacity plan (``pipelines/capacity.py``: each day's input bytes over the
measured bytes per row, at the stage's instance types and counts, start-up included; the
Publish step is not in the plan). The line printed says which. A day without data costs
nothing (no run) but is projected like the others: the projection is an upper bound.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from common.exit_codes import USAGE_ERROR, CommandFailed
from common.s3_locations import parse_s3_uri
from stage_runtime import partitions, run_cost

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

RECENT_DAYS = 7
# markers read at most when looking for recent costs (the newest by key: days sort by date
# in the default partition format, and by their date field below in any format)
MARKERS_READ = 60
SETTING = "max_backfill_cost_usd"


class CostRefused(CommandFailed):
    """The projected cost is above the stage's limit and ``--yes`` was not given."""

    def __init__(self, message: str):
        super().__init__(message, USAGE_ERROR)


@dataclass(frozen=True)
class Projection:
    days: int  # days the backfill would score
    usd: float | None  # their projected cost, or None when it cannot be projected
    per_day: float | None
    basis: str  # what the projection rests on, for the line

    def line(self) -> str:
        if self.days == 0:
            return "projected cost: USD 0 (no day to score in the range)"
        if self.usd is None:
            return f"projected cost: unknown for {self.days} day(s) to score ({self.basis})"
        return (
            f"projected cost: USD {self.usd:.4f} for {self.days} day(s) to score "
            f"(USD {self.per_day:.4f} a day, {self.basis})"
        )


def days_to_score(
    s3: S3Client, layout: partitions.Layout, days: Sequence[date], force: bool
) -> list[date]:
    """The days a backfill would start a run for, as far as their markers say (a marker that
    is not ours is left to the run's own error)."""
    chosen = []
    for day in days:
        try:
            marker = partitions.read_marker(s3, layout.marker_uri(day))
        except ValueError:
            continue
        status = marker.get("status") if marker else None
        if status in partitions.RUNNING or (status in partitions.DONE and not force):
            continue
        chosen.append(day)
    return chosen


def recent_costs(s3: S3Client, layout: partitions.Layout) -> list[float]:
    """The known costs of the stage's newest scored days (newest first), from their markers."""
    bucket, prefix = parse_s3_uri(f"{layout.output_data_url.rstrip('/')}/{partitions.MARKERS}/")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            relative = item["Key"][len(prefix) :]
            if relative.endswith(".json") and not relative.startswith(f"{partitions.UPLOADS}/"):
                keys.append(item["Key"])
    found: list[tuple[str, float]] = []
    for key in sorted(keys, reverse=True)[:MARKERS_READ]:
        try:
            marker = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except ValueError:
            continue
        if not isinstance(marker, dict) or marker.get("status") not in partitions.DONE:
            continue
        usd = (marker.get("cost") or {}).get("total_usd")
        if isinstance(usd, int | float) and not isinstance(usd, bool):
            found.append((str(marker.get("date", key)), float(usd)))
    return [usd for _, usd in sorted(found, reverse=True)[:RECENT_DAYS]]


def planned_day_cost(s3: S3Client, tfvars: dict[str, Any], input_uri: str) -> float | None:
    """The capacity plan's cost of one day: its input's bytes over the measured bytes per
    row, at the stage's types and counts; None when a type or price is unknown."""
    from pipelines import capacity
    from pipelines.instance_types import UnknownInstanceType, instance_type

    bucket, prefix = parse_s3_uri(input_uri)
    size = sum(
        item.get("Size", 0)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    )
    rates = capacity.load_measurements()
    rows = max(1, round(size / rates.input_bytes_per_row))
    try:
        processing = instance_type(tfvars["processing_instance_type"])
        transform = instance_type(tfvars["transform_instance_type"])
    except UnknownInstanceType:
        return None
    settings = capacity.Settings(
        rows, processing, transform, rates, capacity.STARTUP_MINUTES * 60,
        run_cost.table_of(tfvars.get("instance_prices")),
        int(tfvars.get("processing_volume_size_gb") or capacity.VOLUME_GIB),
    )  # fmt: skip
    plan = settings.plan(
        int(tfvars["processing_instance_count"]), int(tfvars["transform_instance_count"])
    )
    return plan.cost


def project(s3: S3Client, tfvars: dict[str, Any], days: Sequence[date], force: bool) -> Projection:
    """The backfill's projected cost (see the module's docstring)."""
    layout = partitions.Layout(
        tfvars["input_data_url"],
        tfvars["output_data_url"],
        tfvars.get("partition_format") or partitions.DEFAULT_FORMAT,
    )
    chosen = days_to_score(s3, layout, days, force)
    if not chosen:
        return Projection(0, 0.0, 0.0, "nothing to score")
    recent = recent_costs(s3, layout)
    if recent:
        per_day = statistics.fmean(recent)
        basis = f"the mean of the stage's {len(recent)} newest scored day(s) with a cost"
        return Projection(len(chosen), per_day * len(chosen), per_day, basis)
    planned = [planned_day_cost(s3, tfvars, layout.input_uri(day)) for day in chosen]
    if any(cost is None for cost in planned):
        reason = (
            "no scored day has a cost yet, and the capacity plan has no price or "
            "measurements for the stage's instance types: set instance_prices"
        )
        return Projection(len(chosen), None, None, reason)
    total = sum(cost for cost in planned if cost is not None)
    basis = (
        "no scored day has a cost yet: the capacity plan's estimate from each day's input "
        "size, start-up included"
    )
    return Projection(len(chosen), total, total / len(chosen), basis)


def check_limit(projection: Projection, tfvars: dict[str, Any], assume_yes: bool) -> None:
    """``CostRefused`` when the projection is above the stage's ``max_backfill_cost_usd``
    (or cannot be made while a limit is set) and ``--yes`` was not given."""
    limit = tfvars.get(SETTING)
    if limit is None or assume_yes or projection.days == 0:
        return
    if projection.usd is None:
        raise CostRefused(
            f"the backfill's cost cannot be projected ({projection.basis}) and the stage sets "
            f"{SETTING} = {limit:g}: add --yes to run it anyway"
        )
    if projection.usd > limit:
        raise CostRefused(
            f"the backfill's projected cost, USD {projection.usd:.4f} for {projection.days} "
            f"day(s), is above the stage's {SETTING} (USD {limit:g}): add --yes to run it "
            "anyway, or ask for fewer days"
        )
