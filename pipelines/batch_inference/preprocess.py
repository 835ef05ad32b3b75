"""Processing-job script: validate and shape batch-inference input, never fit anything.

Reads every ``*.csv`` (with a header) under ``--input-dir`` and, per input file, writes:

* ``<output>/inference/<same relative path>``: the valid rows as headerless CSV
  ``id,feature...`` in schema order, ready for the Transform step (which drops the id with
  an input filter and joins it back to the prediction);
* ``<output>/rejected/<same relative path>``: the invalid rows, with columns
  ``id,reason,record`` (``record`` is the row as read, for replay);
* ``<output>/rejected/whole-files/<same relative path>``: a file that cannot be read row by
  row (not UTF-8, no id column in its header, another delimiter, a record over 64 MiB), byte
  for byte, its lines counted as rejected and the reason in the summary;
* ``<output>/summary/<host>.json``: rows read / written / rejected per file and in total.
  One file per host, because with ``ShardedByS3Key`` several instances upload to the same
  prefix.

Scaling and encoding are *not* done here: statistics fitted on an inference batch would differ
from the training ones. Fitted transforms travel inside the model artifact.

Files are streamed in blocks (pyarrow's incremental CSV reader), so memory stays flat
whatever the input size. The script runs inside SageMaker's scikit-learn container, which
ships pyarrow and pandas; it needs nothing from this repository.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import queue
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Generic, NoReturn, TextIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

DEFAULT_INPUT_DIR = "/opt/ml/processing/input/data"
DEFAULT_OUTPUT_DIR = "/opt/ml/processing/output"
DEFAULT_SCHEMA = "/opt/ml/processing/input/schema"
RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"
DEFAULT_BLOCK_SIZE = 1 << 20
MIN_BLOCK_SIZE = 1 << 12
# A record longer than a block makes pyarrow stop ("straddling object"): the file is read again
# with blocks 4x larger, up to this size; a longer record sends the file to whole-files/.
MAX_BLOCK_SIZE = 1 << 26
WHOLE_FILES = "whole-files"
_LINE_BREAK = "[\r\n]"

# Plain decimal notation only: "nan", "inf", hex and thousands separators are rejected so a
# value that would silently become NaN or a wrong number never reaches the model.
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_PATTERNS = {
    "float": _NUMBER,
    "int": r"^[+-]?[0-9]{1,18}$",
    "string": None,
}
_ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "string": pa.string()}


class UsageError(Exception):
    """Bad arguments or schema: reported as one line, exit code 2."""


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class Schema:
    """The model's input contract: an id column and the ordered, typed features."""

    id_column: str
    features: tuple[Feature, ...]

    @property
    def columns(self) -> list[str]:
        return [self.id_column, *(f.name for f in self.features)]

    @classmethod
    def load(cls, path: Path) -> Schema:
        """Load ``path`` (a JSON file, or a directory holding exactly one)."""
        if path.is_dir():
            candidates = sorted(path.glob("*.json"))
            if len(candidates) != 1:
                raise UsageError(
                    f"schema directory {path} must hold exactly one .json file, "
                    f"found {len(candidates)}"
                )
            path = candidates[0]
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"schema file {path} does not exist") from None
        except UnicodeDecodeError as error:
            raise UsageError(f"schema file {path} is not UTF-8 text ({error.reason})") from None
        except OSError as error:
            raise UsageError(f"schema file {path} cannot be read: {error.strerror}") from None
        except json.JSONDecodeError as error:
            raise UsageError(f"schema file {path} is not valid JSON: {error}") from None
        return cls.from_dict(document, source=str(path))

    @classmethod
    def from_dict(cls, document: object, source: str = "schema") -> Schema:
        """Validate a schema document: ``{"id_column": str, "features": [{name, type}, ...]}``."""
        if not isinstance(document, dict):
            raise UsageError(f"{source}: expected a JSON object with id_column and features")
        id_column = document.get("id_column")
        features = document.get("features")
        if not isinstance(id_column, str) or not id_column:
            raise UsageError(f"{source}: 'id_column' must be a non-empty string")
        if not isinstance(features, list) or not features:
            raise UsageError(f"{source}: 'features' must be a non-empty list")
        parsed = []
        for index, item in enumerate(features):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise UsageError(f"{source}: features[{index}] needs a string 'name'")
            kind = item.get("type", "float")
            if kind not in _PATTERNS:
                raise UsageError(
                    f"{source}: feature {item['name']!r} has type {kind!r}; "
                    f"use one of {', '.join(_PATTERNS)}"
                )
            parsed.append(Feature(item["name"], kind, bool(item.get("nullable", False))))
        names = [id_column, *(f.name for f in parsed)]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UsageError(f"{source}: duplicate column names {duplicates}")
        return cls(id_column, tuple(parsed))


@dataclass
class FileSummary:
    file: str
    rows_read: int = 0
    rows_written: int = 0
    rows_rejected: int = 0
    missing_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    note: str | None = None
    quarantined_to: str | None = None  # rejected/whole-files/..., when the file went whole


_Handle = TypeVar("_Handle", bound=IO[Any])


class _LazyWriter(Generic[_Handle]):
    """Opens its output file on first write, so files with nothing to say are not created."""

    def __init__(self, path: Path, opener: Callable[[Path], _Handle]):
        self.path, self._opener = path, opener
        self.handle: _Handle | None = None

    def get(self) -> _Handle:
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = self._opener(self.path)
        return self.handle

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


def _read_header(path: Path) -> list[str] | None:
    """The header row, or ``None`` for an empty file."""
    with path.open("r", encoding="utf-8-sig", newline="") as handle:
        for row in csv.reader(handle):
            return [name.strip() for name in row]
    return None


def _record_text(values: list[str | None]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def _check_column(feature: Feature | None, values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Return (trimmed values, per-row validity) of one column; ``feature=None`` is the id."""
    trimmed = pc.utf8_trim_whitespace(values)
    present = pc.greater(pc.utf8_length(trimmed), 0)
    if feature is None:
        valid = present
    else:
        pattern = _PATTERNS[feature.type]
        well_formed = present if pattern is None else pc.match_substring_regex(trimmed, pattern)
        valid = pc.or_(well_formed, pc.invert(present)) if feature.nullable else well_formed
    if feature is None or feature.type == "string":
        # a quoted line break would split the record in two for Batch Transform (one per line)
        breaks = pc.or_(pc.match_substring(trimmed, "\n"), pc.match_substring(trimmed, "\r"))
        valid = pc.and_(valid, pc.invert(breaks))
    return trimmed, pc.fill_null(valid, False)


def _reason(schema: Schema, row: dict[str, str | None], missing: set[str]) -> str:
    """Why one row was rejected: the first failing column, in schema order."""
    identifier = (row.get(schema.id_column) or "").strip()
    if not identifier:
        return f"missing value for id column {schema.id_column!r}"
    if re.search(_LINE_BREAK, identifier):
        return f"id column {schema.id_column!r} holds a line break (Transform reads one per line)"
    for feature in schema.features:
        if feature.name in missing:
            if not feature.nullable:
                return f"column {feature.name!r} is missing from the file"
            continue
        value = (row.get(feature.name) or "").strip()
        pattern = _PATTERNS[feature.type]
        if re.search(_LINE_BREAK, value):
            return f"{feature.name!r} holds a line break (Transform reads one record per line)"
        if not value:
            if not feature.nullable:
                return f"missing value for {feature.name!r}"
        elif pattern is not None and not re.match(pattern, value):
            article = "an" if feature.type == "int" else "a"
            return f"{feature.name!r}: {value!r} is not {article} {feature.type}"
    return "invalid row"


def process_file(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> FileSummary:
    """Validate one CSV file, streaming it block by block.

    A file that cannot be read row by row goes whole to ``rejected/whole-files/``: nothing of
    it is lost, and its lines count as rejected.
    """
    try:
        header = _read_header(path)
    except UnicodeDecodeError as error:
        return _quarantine(path, relative, schema, output_dir, f"not UTF-8 text ({error.reason})")
    except csv.Error as error:  # e.g. a first field over the csv module's 128 KiB limit
        return _quarantine(path, relative, schema, output_dir, f"unreadable header: {error}")
    if header is None:
        return FileSummary(file=relative.as_posix(), note="empty file (no header)")
    if schema.id_column not in header:
        return _quarantine(path, relative, schema, output_dir, _header_problem(path, schema))
    # Blocks are cut at line breaks without parsing quotes (fast); a quoted line break that a
    # block boundary falls after makes pyarrow stop, and the file is read again parsing them.
    quoted_breaks = False
    while True:
        try:
            return _read_rows(path, relative, schema, output_dir, header, block_size, quoted_breaks)
        except pa.ArrowInvalid as error:
            for name in ("inference", "rejected"):  # what the failed attempt wrote
                (output_dir / name / relative).unlink(missing_ok=True)
            message = " ".join(str(error).split())
            if "out of sync with chunker" in message and not quoted_breaks:
                quoted_breaks = True
                continue
            if "straddling" in message and block_size < MAX_BLOCK_SIZE:
                block_size = min(block_size * 4, MAX_BLOCK_SIZE)
                continue
            if "straddling" in message:
                reason = f"a record is longer than {MAX_BLOCK_SIZE} bytes"
            elif "UTF8" in message:
                reason = "not UTF-8 text (an invalid byte after the first lines)"
            else:
                reason = f"unreadable CSV: {message}"
            return _quarantine(path, relative, schema, output_dir, reason)


def _header_problem(path: Path, schema: Schema) -> str:
    """Why a header without the id column is not the schema's, as precisely as can be said."""
    with path.open("r", encoding="utf-8-sig", newline="", errors="replace") as handle:
        first = handle.readline()
    for delimiter in (";", "\t", "|"):
        if delimiter in first and "," not in first:
            shown = {"\t": "tab"}.get(delimiter, repr(delimiter))
            return f"the file looks {shown}-delimited; the schema's columns must be comma-separated"
    names = {name.strip() for name in next(csv.reader([first]), [])}
    if not names & set(schema.columns):
        return (
            f"its first line is not a header naming the schema's columns (expected "
            f"{schema.id_column!r}, {schema.features[0].name!r}, ...)"
        )
    lacking = [c for c in schema.columns if c not in names]
    shown = ", ".join(repr(c) for c in lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    return f"its header lacks the id column {schema.id_column!r} (missing: {shown})"


def _quarantine(
    path: Path, relative: Path, schema: Schema, output_dir: Path, reason: str
) -> FileSummary:
    """Copy the file byte for byte to rejected/whole-files/; count its records as rejected."""
    target = output_dir / "rejected" / WHOLE_FILES / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    lines = 0
    first: bytes | None = None
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                lines += 1
                first = line if first is None else first
    records = lines - 1 if first is not None and _looks_like_a_header(first) else lines
    return FileSummary(
        file=relative.as_posix(),
        rows_read=records,
        rows_rejected=records,
        note=f"rejected whole: {reason}",
        quarantined_to=f"rejected/{WHOLE_FILES}/{relative.as_posix()}",
    )


def _looks_like_a_header(line: bytes) -> bool:
    """Column names, not values: no field of the line is a number (any usual delimiter)."""
    fields = re.split(r"[,;\t|]", line.decode("utf-8", errors="replace"))
    return not any(re.match(_NUMBER, field.strip().strip('"')) for field in fields)


def _read_rows(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    header: list[str],
    block_size: int,
    quoted_breaks: bool = False,
) -> FileSummary:
    """One pass over the rows; raises ``pa.ArrowInvalid`` when pyarrow cannot go on."""
    summary = FileSummary(file=relative.as_posix())
    missing = [c for c in schema.columns if c not in header]
    summary.missing_columns = missing
    summary.ignored_columns = [c for c in header if c not in schema.columns]
    present = [c for c in schema.columns if c in header]

    rejected = _LazyWriter(output_dir / "rejected" / relative, _open_rejected)
    inference = _LazyWriter(output_dir / "inference" / relative, lambda p: p.open("wb"))
    # pyarrow may call the handler from its read-ahead thread while this one works on the
    # previous block, so rows are handed over through a thread-safe queue: each row taken
    # from it is counted and rejected together, and none can slip between the two.
    malformed: queue.SimpleQueue[pacsv.InvalidRow] = queue.SimpleQueue()

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        malformed.put(row)
        return "skip"

    def reject(rows: Iterable[tuple[str, str, str]]) -> None:
        for row in rows:
            csv.writer(rejected.get()).writerow(row)
            summary.rows_rejected += 1

    def flush_malformed() -> None:
        taken = []
        while not malformed.empty():
            taken.append(malformed.get_nowait())
        summary.rows_read += len(taken)
        reject(
            (
                "",
                f"line {row.number}: expected {row.expected_columns} fields, "
                f"found {row.actual_columns}",
                row.text,
            )
            for row in taken
        )

    try:
        reader = pacsv.open_csv(
            path,
            # the header's names as _read_header stripped them ("id, age" names "age")
            read_options=pacsv.ReadOptions(
                block_size=block_size, use_threads=False, column_names=header, skip_rows=1
            ),
            parse_options=pacsv.ParseOptions(
                invalid_row_handler=on_invalid_row, newlines_in_values=quoted_breaks
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=present,
                column_types={c: pa.string() for c in present},
                strings_can_be_null=False,
            ),
        )
        for batch in reader:
            flush_malformed()
            summary.rows_read += batch.num_rows
            valid_rows, invalid_rows = _split_batch(batch, schema, missing)
            if valid_rows.num_rows:
                _write_csv(valid_rows, inference.get())
                summary.rows_written += valid_rows.num_rows
            reject(
                (
                    row.get(schema.id_column) or "",
                    _reason(schema, row, set(missing)),
                    _record_text([row.get(c) for c in schema.columns]),
                )
                for row in invalid_rows
            )
        flush_malformed()
    finally:
        inference.close()
        rejected.close()
    return summary


def _split_batch(
    batch: pa.RecordBatch, schema: Schema, missing: list[str]
) -> tuple[pa.Table, list[dict]]:
    """Validate one block: the valid rows typed and in schema order, the invalid ones raw."""
    rows = batch.num_rows
    columns: dict[str, pa.Array] = {}
    valid = pa.array([True] * rows)
    for feature, name in zip((None, *schema.features), schema.columns, strict=True):
        if name in missing:
            if feature is None or not feature.nullable:
                valid = pa.array([False] * rows)
            columns[name] = pa.nulls(rows, pa.string())
            continue
        columns[name], ok = _check_column(feature, batch.column(name))
        valid = pc.and_(valid, ok)
    typed = pa.table(
        {
            name: _typed(feature, pc.filter(columns[name], valid))
            for feature, name in zip((None, *schema.features), schema.columns, strict=True)
        },
        schema=_output_schema(schema),
    )
    invalid = batch.filter(pc.invert(valid)).to_pylist() if typed.num_rows < rows else []
    return typed, invalid


def _open_rejected(path: Path) -> TextIO:
    handle = path.open("w", encoding="utf-8", newline="")
    csv.writer(handle).writerow(["id", "reason", "record"])
    return handle


_NEEDS_QUOTES = r'[",\r\n]'
_PLAIN = pacsv.WriteOptions(include_header=False, quoting_style="none")
_QUOTED = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def _write_csv(table: pa.Table, sink: BinaryIO) -> None:
    """Write headerless CSV, quoting only when a string value requires it.

    pyarrow's "needed" style quotes *every* string; plain ids and categories read better (and
    join back to predictions more predictably) unquoted, so a batch is quoted only when one
    of its string values holds a comma, quote or newline.
    """
    needs_quotes = any(
        pc.any(pc.match_substring_regex(column, _NEEDS_QUOTES)).as_py()
        for column in table.columns
        if pa.types.is_string(column.type)
    )
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer, write_options=_QUOTED if needs_quotes else _PLAIN)
    sink.write(buffer.getvalue())


def _output_schema(schema: Schema) -> pa.Schema:
    return pa.schema(
        [pa.field(schema.id_column, pa.string())]
        + [pa.field(f.name, _ARROW_TYPES[f.type]) for f in schema.features]
    )


def _typed(feature: Feature | None, values: pa.Array) -> pa.Array:
    """Cast validated strings to the feature's type; empty nullable values become null."""
    if feature is None or feature.type == "string":
        return values
    empty = pc.equal(pc.utf8_length(values), 0)
    return pc.cast(
        pc.if_else(empty, pa.scalar(None, pa.string()), values), _ARROW_TYPES[feature.type]
    )


def current_host() -> str:
    """This instance's name (``algo-N``), so each instance writes its own summary file."""
    if os.environ.get("SM_CURRENT_HOST"):
        return os.environ["SM_CURRENT_HOST"]
    try:
        return json.loads(Path(RESOURCE_CONFIG).read_text())["current_host"]
    except (OSError, ValueError, KeyError):
        return "algo-1"


def host_count() -> int:
    """How many instances share the input (``ShardedByS3Key``): 1 when not told otherwise."""
    try:
        if os.environ.get("SM_HOSTS"):
            return len(json.loads(os.environ["SM_HOSTS"]))
        return len(json.loads(Path(RESOURCE_CONFIG).read_text())["hosts"])
    except (OSError, ValueError, KeyError, TypeError):
        return 1


def run(
    input_dir: Path, output_dir: Path, schema: Schema, block_size: int = DEFAULT_BLOCK_SIZE
) -> dict:
    """Process every CSV under ``input_dir``; return the summary document."""
    if not input_dir.is_dir():
        raise UsageError(f"input directory {input_dir} does not exist")
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    ignored = sorted(
        p.relative_to(input_dir).as_posix()
        for p in input_dir.rglob("*")
        if p.is_file() and p.suffix.lower() != ".csv"
    )
    results = [
        process_file(path, path.relative_to(input_dir), schema, output_dir, block_size)
        for path in files
    ]
    totals = {
        key: sum(getattr(r, key) for r in results)
        for key in ("rows_read", "rows_written", "rows_rejected")
    }
    document = {
        "host": current_host(),
        "schema_columns": schema.columns,
        "files": [asdict(r) for r in results],
        "ignored_files": ignored,
        **totals,
    }
    summary_path = output_dir / "summary" / f"{document['host']}.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for name in ("inference", "rejected"):
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    return document


def _block_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of bytes") from None
    if value < MIN_BLOCK_SIZE:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_BLOCK_SIZE} bytes")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"preprocess: error: {message}\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="preprocess", description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", type=Path, default=Path(DEFAULT_INPUT_DIR))
    parser.add_argument("--output-dir", type=Path, default=Path(DEFAULT_OUTPUT_DIR))
    parser.add_argument(
        "--schema",
        type=Path,
        default=Path(DEFAULT_SCHEMA),
        help="feature schema JSON file, or a directory holding exactly one",
    )
    parser.add_argument(
        "--max-rejected-fraction",
        type=float,
        default=1.0,
        help="fail the job when more than this share of rows is rejected (default: never)",
    )
    parser.add_argument(
        "--block-size",
        type=_block_size,
        default=DEFAULT_BLOCK_SIZE,
        help="bytes per parsing block; peak memory is bounded by a few dozen blocks",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        schema = Schema.load(args.schema)
        document = run(args.input_dir, args.output_dir, schema, args.block_size)
    except UsageError as error:
        print(f"preprocess: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output folder that cannot be written, an unreadable input
        print(f"preprocess: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    read, rejected = document["rows_read"], document["rows_rejected"]
    print(
        f"preprocess: {len(document['files'])} file(s), {read} rows read, "
        f"{document['rows_written']} written, {rejected} rejected"
    )
    if read and not document["rows_written"] and host_count() == 1:
        # Say it here, not as "no input object" at the next step. With several instances the
        # others may have rows to score, so one instance's bad shard must not fail the job.
        print(
            f"preprocess: every one of the {read} rows was rejected, nothing is left to score; "
            "see the rejected/ output and the summary",
            file=sys.stderr,
        )
        return 3
    if read and rejected / read > args.max_rejected_fraction:
        print(
            f"preprocess: {rejected} of {read} rows rejected, more than the allowed "
            f"fraction {args.max_rejected_fraction}; see the rejected/ output",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
