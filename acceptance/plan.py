"""What an acceptance run will cost and how long it takes, stated before anything starts.

The run scores the sample's small input, so each job's time is mostly SageMaker's start-up:
the estimates below are per job, start-up included, for the sample on the stage file's
instance types. What is billed is instance time, so the plan counts instance-minutes per
type; prices are the user's to give (``--price ml.m5.xlarge=0.23``, on-demand USD per hour
in their region, from https://aws.amazon.com/sagemaker/pricing/), since they change by region
and over time and this repository must not pretend to know them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

# pipeline runs of the flow: a scheduled day, an upload, a backfill of two days, the smoke run
PIPELINE_RUNS = {"schedule": 1, "upload": 1, "backfill": 2, "smoke": 1}
JOB_MINUTES = 7  # one Processing or Transform job of the sample, start-up included
# minutes of each step that are not pipeline runs (Terraform, promotion, reading metrics)
OTHER_MINUTES = {"base": 6, "register": 2, "promote": 3, "apply": 5, "redeploy": 5,
                 "observe": 10, "teardown": 10}  # fmt: skip
# an endpoint: created, moved blue/green to version 2 (canary, bake, old fleet kept), invoked
# (metrics and capture arrive minutes later), an update rolled back, deleted
ENDPOINT_MINUTES = 55


@dataclass
class Plan:
    """Instance-minutes per instance type, and the run's expected wall-clock minutes."""

    instance_minutes: dict[str, float] = field(default_factory=dict)
    minutes: int = 0

    def add(self, instance_type: str, count: int, minutes: float) -> None:
        self.instance_minutes[instance_type] = (
            self.instance_minutes.get(instance_type, 0.0) + count * minutes
        )

    def cost(self, prices: dict[str, float]) -> tuple[float, list[str]]:
        """The estimate in USD for the types priced, and the types without a price."""
        total = sum(
            minutes / 60 * prices[kind]
            for kind, minutes in self.instance_minutes.items()
            if kind in prices
        )
        return total, sorted(kind for kind in self.instance_minutes if kind not in prices)

    def statement(self, prices: dict[str, float]) -> str:
        """What the user reads before answering --yes."""
        lines = [f"expected time: about {self.minutes} minutes"]
        lines += [
            f"{kind}: {minutes:g} instance-minutes"
            for kind, minutes in sorted(self.instance_minutes.items())
        ]
        total, unpriced = self.cost(prices)
        if prices:
            lines.append(f"estimated cost of the priced types: {total:.2f} USD (on-demand)")
        if unpriced:
            lines.append(
                f"no price given for {', '.join(unpriced)}: pass --price TYPE=USD_PER_HOUR "
                "(https://aws.amazon.com/sagemaker/pricing/, your region)"
            )
        lines.append("plus S3, CloudWatch, KMS and Lambda requests: cents at this size")
        return "\n".join(lines)


def plan(stage_config: dict[str, Any]) -> Plan:
    """The plan for a stage file's settings (the template's defaults where it sets none)."""
    result = Plan()
    runs = sum(PIPELINE_RUNS.values())
    for step in ("processing", "transform"):
        kind = stage_config.get(f"{step}_instance_type", "ml.m5.xlarge")
        result.add(kind, int(stage_config.get(f"{step}_instance_count", 1)), runs * JOB_MINUTES)
    result.minutes = runs * 2 * JOB_MINUTES + sum(OTHER_MINUTES.values())
    endpoint = stage_config.get("endpoint")
    if endpoint and endpoint.get("enabled", True):
        result.minutes += ENDPOINT_MINUTES
        if endpoint.get("serverless") is None:
            # blue/green: the new fleet runs beside the old one while it bakes
            count = int(endpoint.get("min_instance_count", 1))
            result.add(endpoint.get("instance_type", "ml.m5.large"), count, ENDPOINT_MINUTES * 1.5)
    return result


def parse_price(text: str) -> tuple[str, float]:
    """``ml.m5.xlarge=0.23`` -> (type, USD per hour); ``ValueError`` saying what is wrong."""
    kind, _, price = text.partition("=")
    try:
        value = float(price)
    except ValueError:
        value = math.nan
    if not kind.startswith("ml.") or not math.isfinite(value) or value < 0:
        raise ValueError(f"--price {text!r}: write TYPE=USD_PER_HOUR, e.g. ml.m5.xlarge=0.23")
    return kind, value
