"""Processing-job script: the Transform's answers as the stage's predictions table.

The Transform writes ``<input key>.out`` objects of headerless CSV, ``id,answer...`` per row
(the id and every column the model answered). This step gives each row what a table over
them needs, without changing a value:

* the answer's column names and types, declared by the model package
  (``--output-columns name:type,...``; ``string``, ``double`` or ``bigint``);
* the model package version and the pipeline execution that scored it (``model_version``,
  ``execution_id``), so every row says where it came from;
* a place in a day partition: ``<output-dir>/day=YYYY-MM-DD/<execution id>-<host>-<n>.csv``
  (or ``.parquet``), the layout the stage's Glue table projects (``--day``, else the
  execution's start date in UTC); the host in the name keeps the files of instances that
  share the answers (``ShardedByS3Key``) apart.

A model that answers another number of columns than the package declares fails the step
(exit 2, the reason in ``--exit-message``): the table's columns would not say what its
values are. Files are streamed in blocks, so memory stays flat whatever their size. Like
``preprocess.py``, it needs only what SageMaker's scikit-learn image ships (pyarrow).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DEFAULT_INPUT_DIR = "/opt/ml/processing/input/predictions"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output/table"
TYPES = {"string": pa.string(), "double": pa.float64(), "bigint": pa.int64()}
NAME = re.compile(r"^[a-z_][a-z0-9_]{0,127}$")  # a column Athena and Glue take as written
PROVENANCE = ("model_version", "execution_id")
BLOCK_SIZE = 16 * 2**20
FORMATS = ("csv", "parquet")
DEFAULT_COLUMNS = "prediction:double"  # what a package that declares no output_columns answers
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"


class PublishError(Exception):
    """The answers cannot be published as declared; the message says why and what to do."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str


def parse_columns(text: str) -> list[Column]:
    """``name:type,...`` (a missing type is ``double``); names a table can carry, once each."""
    columns: list[Column] = []
    for item in (part.strip() for part in text.split(",")):
        name, _, kind = item.partition(":")
        kind = kind or "double"
        if not NAME.match(name):
            raise PublishError(
                f"output column {name!r}: use lower-case letters, digits and _, starting "
                "with a letter or _ (a name Athena reads as written)"
            )
        if kind not in TYPES:
            raise PublishError(
                f"output column {name!r}: type {kind!r} is not one of {sorted(TYPES)}"
            )
        if name in {c.name for c in columns} or name in PROVENANCE:
            raise PublishError(f"output column {name!r} is named twice (or is a provenance column)")
        columns.append(Column(name, kind))
    return columns


def partition_day(day: str, started: str) -> date:
    """The row's day: ``--day`` when the run scores a day's partition, else the day the
    execution started (UTC)."""
    if day:
        return date.fromisoformat(day)
    moment = datetime.fromisoformat(started.replace("Z", "+00:00"))
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def current_host() -> str:
    """This instance's name (``algo-N``), as SageMaker gives it to a Processing container."""
    if os.environ.get("SM_CURRENT_HOST"):
        return os.environ["SM_CURRENT_HOST"]
    try:
        return str(json.loads(Path(RESOURCE_CONFIG).read_text())["current_host"])
    except (OSError, ValueError, KeyError):
        return "algo-1"


def table_schema(id_column: str, columns: list[Column]) -> pa.Schema:
    return pa.schema(
        [pa.field(id_column, pa.string())]
        + [pa.field(c.name, TYPES[c.type]) for c in columns]
        + [pa.field("model_version", pa.int64()), pa.field("execution_id", pa.string())]
    )


def publish_file(
    source: Path,
    destination: Path,
    schema: pa.Schema,
    provenance: tuple[int, str],
    output_format: str,
    block_size: int = BLOCK_SIZE,
) -> int:
    """One ``.out`` file as rows of the table, streamed; returns the rows written."""
    names = schema.names[: -len(PROVENANCE)]
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={field.name: field.type for field in schema if field.name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as error:
        raise PublishError(_reason(source, error, len(names) - 1)) from None
    version, execution = provenance
    destination.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    writer: Any = None
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as error:
                raise PublishError(_reason(source, error, len(names) - 1)) from None
            rows = batch.num_rows
            table = (
                pa.Table.from_batches([batch])
                .append_column("model_version", pa.array([version] * rows, pa.int64()))
                .append_column("execution_id", pa.array([execution] * rows, pa.string()))
            )
            if writer is None:
                writer = (
                    pq.ParquetWriter(destination, schema, compression="snappy")
                    if output_format == "parquet"
                    else pacsv.CSVWriter(destination, schema)
                )
            writer.write_table(table)
            written += rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # an empty answer file: the table gets no file for it
        return 0
    return written


def _reason(source: Path, error: pa.ArrowInvalid, declared: int) -> str:
    line = str(error).splitlines()[0]
    found = re.search(r"Expected (\d+) columns, got (\d+)", line)
    if found:
        got = int(found.group(2)) - 1
        return (
            f"{source.name}: the model answered {got} column(s), the package declares "
            f"{declared}: declare every answer column in the package's output_columns "
            "metadata (name:type,...)"
        )
    return f"{source.name}: {line}: the answer does not have the declared types"


def publish(
    input_dir: Path,
    output_dir: Path,
    id_column: str,
    columns: list[Column],
    provenance: tuple[int, str],
    day: date,
    output_format: str,
) -> dict[str, int]:
    """Every ``.out`` file under ``input_dir`` into ``output_dir/day=YYYY-MM-DD/``."""
    schema = table_schema(id_column, columns)
    partition = output_dir / f"day={day.isoformat()}"
    host = current_host()
    counts = {"files": 0, "rows": 0}
    for index, source in enumerate(sorted(input_dir.rglob("*.out")), start=1):
        target = partition / f"{provenance[1]}-{host}-{index:05d}.{output_format}"
        rows = publish_file(source, target, schema, provenance, output_format)
        counts["files"] += bool(rows)
        counts["rows"] += rows
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(DEFAULT_INPUT_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--output-columns", default=DEFAULT_COLUMNS)
    parser.add_argument("--model-version", type=int, required=True)
    parser.add_argument("--execution-id", required=True)
    parser.add_argument("--day", default="")
    parser.add_argument("--started", default="")
    parser.add_argument("--format", choices=FORMATS, default="csv")
    parser.add_argument("--exit-message", type=Path)
    args = parser.parse_args(argv)
    try:
        columns = parse_columns(args.output_columns)
        try:
            day = partition_day(args.day, args.started)
        except ValueError:
            if args.day:
                raise PublishError(f"--day {args.day!r} is not a date: give YYYY-MM-DD") from None
            day = datetime.now(UTC).date()  # a start time in another shape: the job's day
        counts = publish(
            args.input_dir,
            args.output_dir,
            args.id_column,
            columns,
            (args.model_version, args.execution_id),
            day,
            args.format,
        )
    except PublishError as error:
        print(f"publish failed: {error}", file=sys.stderr, flush=True)
        if args.exit_message:
            args.exit_message.parent.mkdir(parents=True, exist_ok=True)
            args.exit_message.write_text(f"publish failed: {error}"[:1024])
        return 2
    print(
        f"published {counts['rows']} rows in {counts['files']} file(s) to day={day.isoformat()}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
