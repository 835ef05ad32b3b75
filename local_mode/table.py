"""The stage's predictions table, read on this machine as Athena reads it on AWS.

``Publish`` writes ``<table>/day=YYYY-MM-DD/<execution id>-<n>.csv`` (or ``.parquet``); the
stage's Glue table projects ``day`` from those folders. Here pyarrow's dataset reader takes
the same folders with the same (Hive) partitioning, so the demo can ask the question a team
asks Athena — rows and mean answer per day — of its local copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

FORMATS = {".csv": "csv", ".parquet": "parquet"}


def read(root: Path) -> pa.Table:
    """Every row of the table under ``root`` with its ``day`` (a string, as the Glue table's
    projected partition key is)."""
    files = sorted(p for p in root.rglob("*") if p.suffix in FORMATS)
    if not files:
        return pa.table({})
    dataset = ds.dataset(
        files,
        format=FORMATS[files[0].suffix],
        partitioning=ds.partitioning(pa.schema([("day", pa.string())]), flavor="hive"),
        partition_base_dir=str(root),
    )
    return dataset.to_table()


def by_day(table: pa.Table, column: str) -> list[dict[str, Any]]:
    """``SELECT day, count(*), avg(<column>), model versions ... GROUP BY day ORDER BY day``."""
    if table.num_rows == 0:
        return []
    grouped = table.group_by("day").aggregate(
        [("day", "count"), (column, "mean"), ("model_version", "distinct")]
    )
    rows = sorted(grouped.to_pylist(), key=lambda row: row["day"])
    return [
        {
            "day": row["day"],
            "rows": row["day_count"],
            f"avg({column})": row[f"{column}_mean"],
            "model_versions": sorted(row["model_version_distinct"]),
        }
        for row in rows
    ]


def first_number_column(table: pa.Table) -> str | None:
    """The first answer column that holds numbers (the one a day's mean is asked of)."""
    for field in table.schema:
        if field.name not in ("model_version", "day") and pa.types.is_floating(field.type):
            return field.name
    return None
