"""Infer a team's feature schema from a sample of its headered CSV.

    python -m pipelines.schema infer --sample FILE.csv [--id-column ID]
        [--output feature-schema.json]

Writes the document ``Preprocess`` reads (``Schema.load``: ``id_column`` and ``features``,
each ``name``, ``type`` float|int|string and ``nullable``), features in the header's order.
A column is ``int`` when Preprocess accepts every present value as one (at most 18 digits,
so it fits an int64), else ``float`` when it accepts every one as a number, else ``string``;
``nullable`` when any value is empty. The types are decided by Preprocess's own checks
(``preprocess.accepts``), so the sample passes Preprocess with no row rejected. The id column
is ``--id-column``, or the one column named ``id`` or ``*_id`` (any case).

It refuses, with one line saying why and what to do, what the template cannot carry: a first
line that is not a comma-separated header, duplicate or empty column names, no id column,
an id column with an empty or repeated value, an empty sample, a column with no value at all
(its type is unknown), a row with more or fewer fields than the header, a value holding a line
break (Transform reads one record per line), a file that is not UTF-8.

The file is streamed in blocks (pyarrow, as Preprocess reads), so a large sample is fine; only
the id values are held, to find repeats. A review summary (per column: type, empty values
seen) goes to stderr: read it before committing the schema.

Exit codes (common/exit_codes.py): 0 the schema was written; 2 refused (nothing written).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from common.exit_codes import SUCCESS, USAGE_ERROR, CommandFailed
from pipelines.batch_inference import preprocess

BLOCK_SIZE = 1 << 22
# narrowest first: a column is the first type Preprocess accepts for every present value
NUMBER_TYPES = ("int", "float")
ID_NAME = re.compile(r"(?i)(.+_)?id")


@dataclass
class Column:
    """What the sample showed of one column so far."""

    name: str
    candidates: list[str] = field(default_factory=lambda: list(NUMBER_TYPES))
    empty: int = 0
    line_break: bool = False

    @property
    def type(self) -> str:
        return self.candidates[0] if self.candidates else "string"


def read_header(path: Path) -> list[str]:
    """The sample's header as Preprocess reads it, or ``CommandFailed`` saying what is wrong."""
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except FileNotFoundError:
        raise CommandFailed(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise CommandFailed(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as error:
        raise CommandFailed(f"{path} cannot be read: {error.strerror}") from None
    if not first.strip():
        raise CommandFailed(f"{path} is empty: give a sample with a header and rows")
    header = [name.strip() for name in next(csv.reader([first]))]
    if len(header) == 1 and re.search(r"[;\t|]", first):
        raise CommandFailed(
            f"{path} is not comma-separated (its header is one column {header[0]!r}); "
            "save it as comma-separated CSV"
        )
    if not preprocess.looks_like_a_header(first.encode()):
        unnamed = [str(i + 1) for i, name in enumerate(header) if not name]
        repeated = sorted({name for name in header if name and header.count(name) > 1})
        if unnamed:
            why = f"column(s) {', '.join(unnamed)} have no name"
        elif repeated:
            why = f"it names {', '.join(map(repr, repeated))} more than once"
        else:
            why = "its first line holds a number, so it reads as a record, not column names"
        raise CommandFailed(
            f"{path}: Preprocess would not read its first line as a header ({why}); "
            "give every column one unique, non-numeric name"
        )
    return header


def id_column_of(header: list[str], given: str | None) -> str:
    if given is not None:
        if given not in header:
            raise CommandFailed(f"--id-column {given!r} is not in the sample's header {header}")
        return given
    found = [name for name in header if ID_NAME.fullmatch(name)]
    if len(found) != 1:
        seen = f"found {found}" if found else "found none"
        raise CommandFailed(
            f"cannot tell the id column (a column named id or *_id: {seen}); pass --id-column NAME"
        )
    return found[0]


def infer(path: Path, id_column: str | None = None) -> tuple[preprocess.Schema, dict]:
    """The schema the sample at ``path`` implies, and what was seen (for the review)."""
    header = read_header(path)
    identifier = id_column_of(header, id_column)
    if len(header) < 2:
        raise CommandFailed(f"{path} has only the id column: the model needs features")
    columns = {name: Column(name) for name in header if name != identifier}
    ids: set[str] = set()
    rows = 0
    bad_rows: list[pacsv.InvalidRow] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        bad_rows.append(row)
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                block_size=BLOCK_SIZE, use_threads=False, column_names=header, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid_row, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header}, strings_can_be_null=False
            ),
        )
        for batch in reader:
            if bad_rows:
                raise _field_count(path, bad_rows[0])
            rows += batch.num_rows
            _observe_id(batch.column(identifier), identifier, ids)
            for column in columns.values():
                _observe(column, batch.column(column.name))
    except pa.ArrowInvalid as error:
        message = " ".join(str(error).split())
        raise CommandFailed(f"{path} cannot be read as CSV ({message}); fix the file") from None
    if bad_rows:
        raise _field_count(path, bad_rows[0])
    if rows == 0:
        raise CommandFailed(f"{path} has a header but no rows: give a sample with rows")
    for column in columns.values():
        if column.line_break:
            raise CommandFailed(
                f"column {column.name!r} holds a line break in a value (Transform reads one "
                "record per line); remove line breaks from the values"
            )
        if column.empty == rows:
            raise CommandFailed(
                f"column {column.name!r} has no value in the sample, so its type is unknown; "
                "give a sample where it has values (or drop the column)"
            )
    document = {
        "id_column": identifier,
        "features": [
            {"name": c.name, "type": c.type, "nullable": c.empty > 0} for c in columns.values()
        ],
    }
    schema = preprocess.Schema.from_dict(document, source=str(path))
    seen = {"rows": rows, "empty": {c.name: c.empty for c in columns.values()}}
    return schema, seen


def _field_count(path: Path, row: pacsv.InvalidRow) -> CommandFailed:
    return CommandFailed(
        f"{path} line {row.number}: {row.actual_columns} fields, the header has "
        f"{row.expected_columns}; fix the row (Preprocess would reject it)"
    )


def document_of(schema: preprocess.Schema) -> dict:
    """The JSON document ``Schema.load`` reads back as ``schema``."""
    features = [{"name": f.name, "type": f.type, "nullable": f.nullable} for f in schema.features]
    return {"id_column": schema.id_column, "features": features}


def _observe_id(values: pa.Array, name: str, ids: set[str]) -> None:
    if not preprocess.accepts(None, values):
        raise CommandFailed(
            f"id column {name!r} has an empty value or one with a line break; every row "
            "needs its own id (Preprocess rejects such rows)"
        )
    for value in pc.utf8_trim_whitespace(values).to_pylist():
        if value in ids:
            raise CommandFailed(
                f"id column {name!r} repeats {value!r}; ids must be unique (they join each "
                "prediction back to its row)"
            )
        ids.add(value)


def _observe(column: Column, values: pa.Array) -> None:
    trimmed = pc.utf8_trim_whitespace(values)
    column.empty += int(pc.sum(pc.equal(pc.utf8_length(trimmed), 0)).as_py() or 0)
    column.candidates = [
        kind
        for kind in column.candidates
        if preprocess.accepts(preprocess.Feature(column.name, kind, nullable=True), values)
    ]
    if not column.candidates:
        string = preprocess.Feature(column.name, "string", nullable=True)
        column.line_break = column.line_break or not preprocess.accepts(string, values)


def review(schema: preprocess.Schema, seen: dict) -> str:
    """Per column: its type and how many empty values the sample had."""
    rows = seen["rows"]
    width = max(len(name) for name in schema.columns)
    lines = [f"{rows} rows; id column {schema.id_column!r} (unique, never empty)"]
    for feature in schema.features:
        empty = seen["empty"][feature.name]
        nulls = f"{empty} empty of {rows}, nullable" if empty else "never empty"
        lines.append(f"  {feature.name:<{width}}  {feature.type:<6}  {nulls}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.schema", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inferring = commands.add_parser("infer", help="infer feature-schema.json from a CSV sample")
    inferring.add_argument("--sample", type=Path, required=True, help="a headered CSV sample")
    inferring.add_argument("--id-column", help="the id column (default: the one id/*_id)")
    inferring.add_argument("--output", type=Path, default=Path("feature-schema.json"))
    args = parser.parse_args(argv)
    try:
        schema, seen = infer(args.sample, args.id_column)
    except (CommandFailed, preprocess.UsageError) as error:
        print(f"pipelines.schema: {error}", file=sys.stderr)
        return error.exit_code if isinstance(error, CommandFailed) else USAGE_ERROR
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document_of(schema), indent=2) + "\n", encoding="utf-8")
    print(review(schema, seen), file=sys.stderr)
    print(f"wrote {args.output}: review the types, then commit it", file=sys.stderr)
    return SUCCESS


if __name__ == "__main__":
    sys.exit(main())
