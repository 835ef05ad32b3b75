"""What the stage's dashboard would show of a run's cost, evaluated locally.

On AWS the run-outcome function prints a ``run-cost`` line for each run it records
(``stage_runtime/run_cost.py``); the stage's metric filters on its log group make it the
``RunCost`` and ``CostPer1000Rows`` metrics (``terraform/stage/alarms.tf``) that the
dashboard's "Cost per run" widget graphs. Local mode runs no function, so the demo builds
the same line from a run's cost and evaluates the filters here (``local_mode/alarms.py``'s
``LogMetric``). The declarations repeat the template's; the emulator apply test holds them
to the filters it created (``tests/test_terraform.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from local_mode.alarms import PIPELINE, LogMetric
from stage_runtime import run_cost


def _cost_metric(name: str, field: str) -> LogMetric:
    return LogMetric(
        name,
        f'{{ $.event = "{run_cost.EVENT}" && $.pipeline = "{PIPELINE}" && $.{field} >= 0 }}',
        f"$.{field}",
    )


RUN_COST = _cost_metric("RunCost", "cost_usd")
COST_PER_1000_ROWS = _cost_metric("CostPer1000Rows", "cost_per_1000_rows")
COST_METRICS = (RUN_COST, COST_PER_1000_ROWS)


def dashboard_values(
    pipeline: str, day: str | None, cost: Mapping[str, Any]
) -> dict[str, float | None]:
    """Each cost metric's value for the run-cost line of ``cost`` (None: the filter publishes
    nothing, as for a cost that is unknown)."""
    line = run_cost.metric_line(pipeline, day, cost)
    return {
        metric.name: next(iter(metric.values(pipeline, [line])), None) for metric in COST_METRICS
    }
