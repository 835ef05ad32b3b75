"""The price table's reader, kept at its old import path for the capacity plan and users'
scripts: it moved to ``stage_runtime/prices.py`` (with its table), which the stage's
functions ship in their zips to compute a run's cost."""

from stage_runtime.prices import (
    JOBS,
    PRICES,
    Job,
    PriceTableError,
    UnknownPrice,
    load_table,
    price_per_hour,
    verified,
    with_overrides,
)

__all__ = [
    "JOBS", "PRICES", "Job", "PriceTableError", "UnknownPrice", "load_table",
    "price_per_hour", "verified", "with_overrides",
]  # fmt: skip
