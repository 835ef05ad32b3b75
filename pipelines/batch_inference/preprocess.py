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
* ``<output>/summary/<host>.json``: rows read / written / rejected per file and in total,
  rejections by reason, and the batch's quality against the model's baseline (``--baseline``:
  per-feature drift, the gate's verdict). One file per host, because with ``ShardedByS3Key``
  several instances upload to the same prefix.

The quality gate (``--quality-gate-mode fail``) stops the run before scoring when the rejected
fraction or the drift score is over its threshold: exit code 3, the reason in
``--exit-message`` (SageMaker shows that file as the job's ``ExitMessage``). Every run prints
one JSON line (``"event": "batch-quality"``) that CloudWatch Logs metric filters turn into
metrics: the job itself makes no network call.

Scaling and encoding are *not* done here: statistics fitted on an inference batch would differ
from the training ones. Fitted transforms travel inside the model artifact.

Files are streamed in blocks (pyarrow's incremental CSV reader), so memory stays flat
whatever the input size. The script runs inside SageMaker's scikit-learn container, which
ships pyarrow and pandas; of this repository it needs only ``quality.py``, which the job
receives as its own input beside this script (``input/lib/``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import os
import queue
import re
import shutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Generic, NoReturn, TextIO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def _load_quality() -> ModuleType:
    """quality.py: the package's when imported from the repository; run as a script (the
    Processing job), the job's ``lib`` input (``../lib/``) or, in a checkout, the sibling."""
    if __package__:
        from pipelines.batch_inference import quality as packaged

        return packaged
    here = Path(__file__).resolve().parent
    for shipped in (here.parent / "lib" / "quality.py", here / "quality.py"):
        spec = importlib.util.spec_from_file_location("quality", shipped)
        if shipped.is_file() and spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            return module
    raise ImportError(f"quality.py is neither in {here.parent / 'lib'} nor beside {here}")


if TYPE_CHECKING:
    from pipelines.batch_inference import quality
else:
    quality = _load_quality()

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
    "int": r"^[+-]?0*[0-9]{1,18}$",  # 18 digits always fit an int64 (leading zeros aside)
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
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def count_rejection(self, kind: str, rows: int = 1) -> None:
        self.rows_rejected += rows
        self.rejected_by_reason[kind] = self.rejected_by_reason.get(kind, 0) + rows


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


def read_header(path: Path) -> list[str] | None:
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
    """Return (values, per-row validity) of one column; ``feature=None`` is the id.

    The values are typed (numbers cast, empty nullable values null): a row is valid only if
    every one of its values both matches its pattern and casts to a finite number, so the
    pattern and the cast can never disagree about a row."""
    trimmed = pc.utf8_trim_whitespace(values)
    pattern = None if feature is None else _PATTERNS[feature.type]
    nullable = feature is not None and feature.nullable
    if pattern is not None and not nullable:
        # the number patterns need a digit: an empty value fails them, no length test needed
        valid = pc.match_substring_regex(trimmed, pattern)
    else:
        present = pc.greater(pc.utf8_length(trimmed), 0)
        well_formed = present if pattern is None else pc.match_substring_regex(trimmed, pattern)
        valid = pc.or_(well_formed, pc.invert(present)) if nullable else well_formed
    valid = pc.fill_null(valid, False)
    if feature is None or feature.type == "string":
        # a quoted line break would split the record in two for Batch Transform (one per line)
        breaks = pc.or_(pc.match_substring(trimmed, "\n"), pc.match_substring(trimmed, "\r"))
        return trimmed, pc.and_(valid, pc.invert(breaks))
    return _cast_numbers(feature, trimmed, valid)


def accepts(feature: Feature | None, values: pa.Array) -> bool:
    """Whether every value of one column (strings as read; ``feature=None``: the id column)
    is one this script accepts: what ``pipelines.schema`` infers a schema by, so the two
    cannot disagree."""
    return bool(pc.all(_check_column(feature, values)[1]).as_py() is not False)


def _cast_numbers(
    feature: Feature, trimmed: pa.Array, valid: pa.Array
) -> tuple[pa.Array, pa.Array]:
    """Cast a number column's well-formed values; a value that does not cast, or casts to
    an infinite float (``1e999``), makes its row invalid, never the whole file unreadable."""
    empty = pc.equal(pc.utf8_length(trimmed), 0)
    text = pc.if_else(pc.and_(valid, pc.invert(empty)), trimmed, pa.scalar(None, pa.string()))
    if feature.type == "int":  # the pattern allows "+1"; pyarrow's integer cast does not
        text = pc.replace_substring_regex(text, r"^\+", "")
    target = _ARROW_TYPES[feature.type]
    try:
        typed = pc.cast(text, target)
    except pa.ArrowInvalid:  # one value the cast refuses: find it, value by value
        typed = pa.array([_cast_one(value, target) for value in text.to_pylist()], target)
        valid = pc.and_(valid, pc.or_(pc.is_null(text), pc.is_valid(typed)))
    if feature.type == "float":
        valid = pc.and_(valid, pc.fill_null(pc.is_finite(typed), True))
    return typed, pc.fill_null(valid, False)


def _cast_one(value: str | None, target: pa.DataType) -> Any:
    """One value cast as the column's cast would, or None when it cannot be."""
    try:
        return pc.cast(pa.array([value], pa.string()), target)[0].as_py()
    except pa.ArrowInvalid:
        return None


def _value_problem(feature: Feature, value: str) -> str | None:
    """Why one present, trimmed value is not a valid ``feature`` value, or None: the row-level
    reason for what ``_check_column`` decided for the whole column."""
    pattern = _PATTERNS[feature.type]
    article = "an" if feature.type == "int" else "a"
    if pattern is not None and not re.match(pattern, value):
        return f"{feature.name!r}: {value!r} is not {article} {feature.type}"
    if feature.type == "string":
        return None
    number = value[1:] if feature.type == "int" and value.startswith("+") else value
    cast = _cast_one(number, _ARROW_TYPES[feature.type])
    if cast is None:
        return f"{feature.name!r}: {value!r} is not {article} {feature.type}"
    if feature.type == "float" and not math.isfinite(cast):
        return f"{feature.name!r}: {value!r} is out of a float's range (it reads as {cast})"
    return None


def _reason(schema: Schema, row: dict[str, str | None], missing: set[str]) -> tuple[str, str]:
    """Why one row was rejected, as (kind, text): the first failing column, in schema order.

    The kinds (``REJECTION_KINDS``) are what the summary counts and the run report shows."""
    identifier = (row.get(schema.id_column) or "").strip()
    if not identifier:
        return "missing_id", f"missing value for id column {schema.id_column!r}"
    if re.search(_LINE_BREAK, identifier):
        return "line_break", (
            f"id column {schema.id_column!r} holds a line break (Transform reads one per line)"
        )
    for feature in schema.features:
        if feature.name in missing:
            if not feature.nullable:
                return "missing_column", f"column {feature.name!r} is missing from the file"
            continue
        value = (row.get(feature.name) or "").strip()
        if re.search(_LINE_BREAK, value):
            return "line_break", (
                f"{feature.name!r} holds a line break (Transform reads one record per line)"
            )
        if not value:
            if not feature.nullable:
                return "missing_value", f"missing value for {feature.name!r}"
        elif problem := _value_problem(feature, value):
            return "wrong_type", problem
    return "other", "invalid row"


# Why rows are rejected, as the summary counts them.
REJECTION_KINDS = (
    "field_count", "missing_id", "missing_column", "missing_value", "wrong_type", "line_break",
    "whole_file", "other",
)  # fmt: skip


def process_file(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    block_size: int = DEFAULT_BLOCK_SIZE,
    drift: quality.BatchDrift | None = None,
) -> FileSummary:
    """Validate one CSV file, streaming it block by block; valid rows feed ``drift``.

    A file that cannot be read row by row goes whole to ``rejected/whole-files/``: nothing of
    it is lost, and its lines count as rejected.
    """
    try:
        header = read_header(path)
    except UnicodeDecodeError as error:
        return _quarantine(path, relative, schema, output_dir, f"not UTF-8 text ({error.reason})")
    except csv.Error as error:  # e.g. a first field over the csv module's 128 KiB limit
        return _quarantine(path, relative, schema, output_dir, f"unreadable header: {error}")
    if header is None:
        return FileSummary(file=relative.as_posix(), note="empty file (no header)")
    if schema.id_column not in header:
        reason, is_header = _header_problem(path, schema)
        return _quarantine(path, relative, schema, output_dir, reason, is_header)
    repeated = sorted({name for name in header if name in schema.columns} - _once(header))
    if repeated:  # which of the two the model should get cannot be known
        shown = ", ".join(repr(name) for name in repeated)
        reason = f"its header names {shown} more than once; keep one column of each name"
        return _quarantine(path, relative, schema, output_dir, reason, True)
    # Blocks are cut at line breaks without parsing quotes (fast); a quoted line break that a
    # block boundary falls after makes pyarrow stop, and the file is read again parsing them.
    quoted_breaks = False
    while True:
        # what this attempt sees is added to the batch only if the attempt reads the file
        attempt = drift.fresh() if drift is not None else None
        try:
            summary = _read_rows(
                path, relative, schema, output_dir, header, block_size, quoted_breaks, attempt
            )
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
            return _quarantine(path, relative, schema, output_dir, reason, True)
        if drift is not None and attempt is not None:
            drift.merge(attempt)
        return summary


def _once(names: list[str]) -> set[str]:
    """The names that appear exactly once."""
    return {name for name in names if names.count(name) == 1}


def _header_problem(path: Path, schema: Schema) -> tuple[str, bool]:
    """Why a header without the id column is not the schema's, as precisely as can be said,
    and whether the first line is a header at all (else it is a record, counted as one)."""
    with path.open("r", encoding="utf-8-sig", newline="", errors="replace") as handle:
        first = handle.readline()
    for delimiter in (";", "\t", "|"):
        if delimiter in first and "," not in first:
            shown = {"\t": "tab"}.get(delimiter, repr(delimiter))
            return (
                f"the file looks {shown}-delimited; the schema's columns must be comma-separated",
                looks_like_a_header(first.encode()),
            )
    names = {name.strip() for name in next(csv.reader([first]), [])}
    if not names & set(schema.columns):
        return (
            f"its first line is not a header naming the schema's columns (expected "
            f"{schema.id_column!r}, {schema.features[0].name!r}, ...)"
        ), looks_like_a_header(first.encode())
    lacking = [c for c in schema.columns if c not in names]
    shown = ", ".join(repr(c) for c in lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    return f"its header lacks the id column {schema.id_column!r} (missing: {shown})", True


def _quarantine(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    reason: str,
    is_header: bool | None = None,
) -> FileSummary:
    """Copy the file byte for byte to rejected/whole-files/; count its records as rejected
    (the first line too unless it is a header: ``is_header``, or guessed when unknown)."""
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
    if first is not None and is_header is None:
        is_header = looks_like_a_header(first)
    records = lines - 1 if first is not None and is_header else lines
    summary = FileSummary(
        file=relative.as_posix(),
        rows_read=records,
        note=f"rejected whole: {reason}",
        quarantined_to=f"rejected/{WHOLE_FILES}/{relative.as_posix()}",
    )
    summary.count_rejection("whole_file", records)
    return summary


def looks_like_a_header(line: bytes) -> bool:
    """Column names, not values: every field of the line (any usual delimiter) is present,
    none is a number, and no two are the same."""
    text = line.decode("utf-8", errors="replace").strip("\ufeff\r\n")
    fields = [field.strip().strip('"') for field in re.split(r"[,;\t|]", text)]
    numbers = any(re.match(_NUMBER, field) for field in fields)
    return all(fields) and not numbers and len(set(fields)) == len(fields)


def _read_rows(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    header: list[str],
    block_size: int,
    quoted_breaks: bool = False,
    drift: quality.BatchDrift | None = None,
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

    def reject(rows: Iterable[tuple[str, tuple[str, str], str]]) -> None:
        for identifier, (kind, reason), record in rows:
            csv.writer(rejected.get()).writerow((identifier, reason, record))
            summary.count_rejection(kind)

    def flush_malformed() -> None:
        taken = []
        while not malformed.empty():
            taken.append(malformed.get_nowait())
        summary.rows_read += len(taken)
        reject(
            (
                "",
                (
                    "field_count",
                    f"line {row.number}: expected {row.expected_columns} fields, "
                    f"found {row.actual_columns}",
                ),
                row.text,
            )
            for row in taken
        )

    try:
        reader = pacsv.open_csv(
            path,
            # the header's names as read_header stripped them ("id, age" names "age")
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
                if drift is not None:
                    _observe(drift, valid_rows)
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


def _observe(drift: quality.BatchDrift, rows: pa.Table) -> None:
    """Feed one block of valid, typed rows to the drift measures (columnar: no row loop)."""
    for name, feature in drift.features.items():
        column = rows.column(name)
        if feature.baseline["type"] == "numeric":
            feature.update(pc.cast(column, pa.float64()).to_numpy())  # null -> NaN
        else:
            counted = pc.value_counts(pc.drop_null(column)).to_pylist()
            feature.update_counts(
                {item["values"]: item["counts"] for item in counted}, column.null_count
            )


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
            columns[name] = pa.nulls(
                rows, _ARROW_TYPES["string" if feature is None else feature.type]
            )
            continue
        columns[name], ok = _check_column(feature, batch.column(name))
        valid = pc.and_(valid, ok)
    typed = pa.table(
        {name: pc.filter(columns[name], valid) for name in schema.columns},
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


@dataclass(frozen=True)
class Gate:
    """The quality gate: thresholds and what exceeding one does (``fail`` or ``warn``).

    With several instances (``ShardedByS3Key``) each one holds its own share against the
    thresholds, so any share over a threshold counts: a drifted file is drift."""

    max_rejected_fraction: float = 1.0
    max_drift_score: float | None = None
    mode: str = "fail"

    def breaches(self, rows_read: int, rows_rejected: int, drift: dict | None) -> list[str]:
        """Each exceeded threshold as ``measure value > threshold`` (with the worst features)."""
        found = []
        fraction = rows_rejected / rows_read if rows_read else 0.0
        if fraction > self.max_rejected_fraction:
            found.append(
                f"RejectedFraction {fraction:.4g} ({rows_rejected} of {rows_read} rows) > "
                f"MaxRejectedFraction {self.max_rejected_fraction:g}"
            )
        drift = drift or {}
        score = drift.get("drift_score")
        if score is not None and self.max_drift_score is not None and score > self.max_drift_score:
            worst = ", ".join(f"{w['feature']} {w['psi']:.3g}" for w in drift["worst_features"])
            found.append(
                f"DriftScore {score:.4g} > MaxDriftScore {self.max_drift_score:g} "
                f"(worst features by PSI: {worst})"
            )
        return found


def nothing_left_to_score(rows_read: int, rows_written: int) -> bool:
    """Rows were read and every one rejected, on the only instance: fail in either gate mode,
    here rather than as "no input object" at the Transform. With several instances the others
    may have rows to score, so one instance's bad shard must not fail the job."""
    return bool(rows_read) and not rows_written and host_count() == 1


def load_baseline(path: Path | None, schema: Schema) -> tuple[quality.BatchDrift | None, str]:
    """The drift measures for ``path`` (a baseline file, or a folder holding one) and a note.

    No baseline is not an error (a model may have none); an unusable one is reported and its
    drift not measured, so the gate ignores drift rather than failing on a bad document."""
    if path is None:
        return None, "no baseline: the model version has none"
    if path.is_dir():
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            return None, f"baseline unusable: {path} holds {len(candidates)} .json files, not 1"
        path = candidates[0]
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        known = quality.BatchDrift.load(document, []).baseline["features"]  # checked shape
        comparable = [
            f.name
            for f in schema.features
            if f.name in known
            and known[f.name]["type"] == ("categorical" if f.type == "string" else "numeric")
        ]
        drift = quality.BatchDrift(document, comparable)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        return None, f"baseline unusable: {path.name}: {error}"
    return drift, f"baseline {path.name}: {len(drift.features)} features compared"


def run(
    input_dir: Path,
    output_dir: Path,
    schema: Schema,
    block_size: int = DEFAULT_BLOCK_SIZE,
    drift: quality.BatchDrift | None = None,
    gate: Gate | None = None,
    baseline_note: str = "no baseline: the model version has none",
) -> dict:
    """Process every CSV under ``input_dir``; return the summary document (with the quality
    report and, given a ``gate``, its verdict: ``passed``, ``warned`` or ``failed``)."""
    if not input_dir.is_dir():
        raise UsageError(f"input directory {input_dir} does not exist")
    files = sorted(p for p in input_dir.rglob("*") if p.is_file() and p.suffix.lower() == ".csv")
    ignored = sorted(
        p.relative_to(input_dir).as_posix()
        for p in input_dir.rglob("*")
        if p.is_file() and p.suffix.lower() != ".csv"
    )
    results = [
        process_file(path, path.relative_to(input_dir), schema, output_dir, block_size, drift)
        for path in files
    ]
    totals = {
        key: sum(getattr(r, key) for r in results)
        for key in ("rows_read", "rows_written", "rows_rejected")
    }
    by_reason: dict[str, int] = {}
    for result in results:
        for kind, rows in result.rejected_by_reason.items():
            by_reason[kind] = by_reason.get(kind, 0) + rows
    drift_report = drift.report() if drift is not None else None
    nothing_left = nothing_left_to_score(totals["rows_read"], totals["rows_written"])
    gate = gate or Gate()
    breaches = gate.breaches(totals["rows_read"], totals["rows_rejected"], drift_report)
    if nothing_left:
        breaches.insert(0, f"every one of the {totals['rows_read']} rows was rejected")
    document = {
        "host": current_host(),
        "schema_columns": schema.columns,
        "files": [asdict(r) for r in results],
        "ignored_files": ignored,
        **totals,
        "rejected_by_reason": by_reason,
        "quality": {
            "baseline": baseline_note,
            "drift": drift_report,
            "gate": {
                **asdict(gate),
                "verdict": "passed"
                if not breaches
                else "failed"
                if gate.mode == "fail" or nothing_left
                else "warned",
                "breaches": breaches,
            },
        },
    }
    summary_path = output_dir / "summary" / f"{document['host']}.json"
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    for name in ("inference", "rejected"):
        (output_dir / name).mkdir(parents=True, exist_ok=True)
    return document


def _checked(
    parse: Callable[[str], Any], valid: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then require ``valid`` (``rule`` says what is)."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not valid(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text}")
        return value

    return convert


_block_size = _checked(int, lambda v: v >= MIN_BLOCK_SIZE, f"at least {MIN_BLOCK_SIZE} bytes")
_share = _checked(float, lambda v: 0.0 <= v <= 1.0, "a share from 0 to 1")
_drift_limit = _checked(float, lambda v: v >= 0.0 and math.isfinite(v), "a PSI limit of 0 or more")


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
        type=_share,
        default=1.0,
        help="the gate's limit on the share of rows rejected (default 1: no limit)",
    )
    parser.add_argument(
        "--max-drift-score",
        type=_drift_limit,
        default=None,
        help="the gate's limit on the largest PSI of a feature (default: no limit)",
    )
    parser.add_argument(
        "--quality-gate-mode",
        choices=("fail", "warn"),
        default="fail",
        help="over a limit: fail the job before scoring, or only warn (default fail)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="the model's baseline JSON, or a directory holding it (default: none)",
    )
    parser.add_argument(
        "--pipeline-name", default="local", help="named in the metric line (dimension)"
    )
    parser.add_argument(
        "--exit-message",
        type=Path,
        default=None,
        help="write why the job failed here (SageMaker: /opt/ml/output/message)",
    )
    parser.add_argument(
        "--block-size",
        type=_block_size,
        default=DEFAULT_BLOCK_SIZE,
        help="bytes per parsing block; peak memory is bounded by a few dozen blocks",
    )
    return parser.parse_args(argv)


def _fixed(value: float) -> str:
    """A JSON number in plain decimals, 6 places (``0.00005``, never ``5e-05``)."""
    return f"{value:.6f}".rstrip("0").rstrip(".") or "0"


def metric_line(document: dict, pipeline: str) -> str:
    """The run's one JSON log line: what CloudWatch Logs metric filters read (see the
    stage template). A measure without a finite value (``drift_score`` with no baseline) is
    left out, so its filter publishes nothing rather than an invalid line."""
    read, written = document["rows_read"], document["rows_written"]
    gate = document["quality"]["gate"]
    drift = (document["quality"]["drift"] or {}).get("drift_score")
    line: dict[str, Any] = {
        "event": "batch-quality",
        "pipeline": pipeline,
        "host": document["host"],
        "rows_read": read,
        "rows_rejected": document["rows_rejected"],
        "rows_written": written,
        "rows_scored": 0 if gate["verdict"] == "failed" else written,
        "rejected_fraction": document["rows_rejected"] / read if read else 0.0,
        "gate": gate["verdict"],
        "drift_score": drift,
    }
    fields = []
    for key, value in line.items():
        if isinstance(value, float):
            if not math.isfinite(value):
                continue
            text = _fixed(value)
        elif value is None:
            continue
        else:
            text = json.dumps(value)
        fields.append(f"{json.dumps(key)}:{text}")
    return "{" + ",".join(fields) + "}"


def _fail(message: str, exit_message: Path | None) -> int:
    """Exit code 3 with ``message`` on stderr and in SageMaker's ExitMessage file (1 KB)."""
    print(f"preprocess: {message}", file=sys.stderr)
    if exit_message is not None:
        exit_message.parent.mkdir(parents=True, exist_ok=True)
        exit_message.write_bytes(message.encode("utf-8")[:1024].decode("utf-8", "ignore").encode())
    return 3


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    gate = Gate(args.max_rejected_fraction, args.max_drift_score, args.quality_gate_mode)
    try:
        schema = Schema.load(args.schema)
        drift, note = load_baseline(args.baseline, schema)
        document = run(args.input_dir, args.output_dir, schema, args.block_size, drift, gate, note)
    except UsageError as error:
        print(f"preprocess: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output folder that cannot be written, an unreadable input
        print(f"preprocess: {error.filename}: {error.strerror or error}", file=sys.stderr)
        return 2
    read, rejected = document["rows_read"], document["rows_rejected"]
    print(
        f"preprocess: {len(document['files'])} file(s), {read} rows read, "
        f"{document['rows_written']} written, {rejected} rejected; {note}"
    )
    print(metric_line(document, args.pipeline_name), flush=True)
    if nothing_left_to_score(read, document["rows_written"]):
        return _fail(
            f"every one of the {read} rows was rejected, nothing is left to score; "
            "see the rejected/ output and the summary",
            args.exit_message,
        )
    breaches = document["quality"]["gate"]["breaches"]
    if breaches and gate.mode == "fail":
        return _fail(
            "quality gate failed, nothing scored: " + "; ".join(breaches), args.exit_message
        )
    for breach in breaches:
        print(f"preprocess: quality gate warning (mode warn): {breach}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
