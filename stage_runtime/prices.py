"""On-demand prices of SageMaker Processing and Batch Transform instances, shipped as data.

``stage_runtime/sagemaker_prices.json`` holds USD per instance-hour in us-east-1, with the
page it stands for, the date it was looked up and whether each figure was verified there
(none is yet: docs/capacity.md, "Prices"). Nothing is fetched at run time. A stage, a
region or a negotiated rate gives its own table (the same JSON shape) to ``load_table`` or
as ``table=``, or its own prices over the shipped ones (``with_overrides``: the stage file's
``instance_prices``); the capacity plan (``pipelines/capacity.py``) and a run's cost
(``stage_runtime/run_cost.py``) read prices only through ``price_per_hour``. It lives in
``stage_runtime`` because the stage's functions compute a run's cost: their zips carry this
package (``lambdas/package.py``), not ``pipelines``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

PRICES = Path(__file__).with_name("sagemaker_prices.json")
Job = Literal["processing", "transform"]
JOBS: tuple[Job, ...] = ("processing", "transform")


class PriceTableError(ValueError):
    """A price table that cannot be read: the message names the file and what is wrong."""


class UnknownPrice(KeyError):
    """No price for this type and job in the table: it must be given, not guessed."""

    def __init__(self, instance_type: str, job: str, table: dict[str, Any]):
        super().__init__(instance_type, job)
        self.instance_type, self.job = instance_type, job
        self.path = table.get("path", "the price table")

    def __str__(self) -> str:
        return (
            f"no {self.job} price for {self.instance_type} in {self.path}: add it there, "
            "or give a table of your own (--prices FILE)"
        )


def load_table(path: Path | None = None) -> dict[str, Any]:
    """The price table at ``path`` (default: the shipped one), checked for its shape."""
    path = path or PRICES
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PriceTableError(f"price table {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PriceTableError(f"price table {path} is not readable JSON: {error}") from None
    prices = table.get("prices") if isinstance(table, dict) else None
    if not isinstance(prices, dict):
        raise PriceTableError(f'price table {path} has no "prices" object')
    for name, entry in prices.items():
        if not isinstance(entry, dict):
            raise PriceTableError(f"price table {path}: {name} is not an object")
        for job in JOBS:
            value = entry.get(job)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise PriceTableError(
                    f"price table {path}: {name} {job} must be a positive USD per hour"
                )
    shown = "stage_runtime/sagemaker_prices.json" if path == PRICES else str(path)
    return {**table, "path": shown}


def price_per_hour(
    instance_type: str, job: Job = "processing", table: dict[str, Any] | None = None
) -> float:
    """On-demand USD per instance-hour of ``instance_type`` for ``job``, from ``table``
    (default: the shipped table); ``UnknownPrice`` when the table has none."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {', '.join(JOBS)}, not {job!r}")
    table = table if table is not None else load_table()
    value = table["prices"].get(instance_type, {}).get(job)
    if value is None:
        raise UnknownPrice(instance_type, job, table)
    return float(value)


def with_overrides(table: dict[str, Any], overrides: dict[str, float]) -> dict[str, Any]:
    """``table`` with ``overrides`` (instance type -> USD per hour, for both jobs: the stage
    file's ``instance_prices``) over its prices, each marked as the stage's own figure.
    Checked where they are set (promotion/stage_config.py, the template's validation)."""
    if not overrides:
        return table
    prices = dict(table["prices"])
    for name, usd in overrides.items():
        # the stage's own figure (a negotiated rate, another region): it vouches for it
        prices[name] = {job: float(usd) for job in JOBS} | {"verified": True, "stage": True}
    return {**table, "prices": prices, "overridden": sorted(overrides)}


def verified(instance_type: str, table: dict[str, Any]) -> bool:
    """Whether the table says the type's prices were checked against their source."""
    return bool(table["prices"].get(instance_type, {}).get("verified", table.get("verified")))
