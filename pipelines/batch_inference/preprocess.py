"""Processing-job script: validate and shape batch-inference input, never fit anything.

Reads every input file under ``--input-dir``, its format chosen by its name (``EXTENSIONS``:
``.csv`` with a header, ``.parquet``, ``.jsonl``/``.ndjson`` one JSON object per line; CSV
and JSON Lines also gzip-compressed, ``.gz``) or for every file by ``--input-format``; each
format's values pass the same checks. Per input file it writes:

* ``<output>/inference/<same relative path>``: the valid rows as headerless CSV
  ``id,feature...`` in schema order, ready for the Transform step (which drops the id with
  an input filter and joins it back to the prediction); ``.csv`` added to a name that does
  not end so (``a.parquet.csv``): the same rows give the same bytes in every format. A
  file larger than its share of the Transform fleet (``--transform-instances`` x
  ``--transform-concurrency`` request slots) is written as parts ``<name>.part-00001``...,
  whose concatenation is that file, so every Transform instance gets objects to score;
* ``<output>/rejected/<same relative path>`` (``.csv`` added likewise): the invalid rows,
  with columns ``id,reason,record`` (``record`` is the row as read, for replay: a JSON
  line as it was, a Parquet row as CSV), in the order read, except that a CSV block's rows
  with the wrong number of fields may come before the previous block's bad values (pyarrow
  reports them from its read-ahead thread);
* ``<output>/rejected/whole-files/<same relative path>``: a file that cannot be read row by
  row (not UTF-8, no id column in its header, another delimiter, a record over 64 MiB, a
  damaged gzip stream; a Parquet file without the schema's columns or types, or corrupt),
  byte for byte, its rows counted as rejected and the reason in the summary;
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

Files are streamed in blocks (pyarrow's incremental CSV reader, Parquet's record batches,
JSON Lines by lines), so memory stays flat whatever the input size. ``--workers`` processes
(default: one per vCPU, as many as ``--max-memory-mb`` holds) read files side by side, a
large plain CSV file in spans of whole lines and a large Parquet file by its row groups; the
rows, counts, rejections and drift are those of one process reading each file whole. The
script runs inside SageMaker's scikit-learn container, which ships pyarrow and pandas; of
this repository it needs only ``quality.py``, which the job receives as its own input beside
this script (``input/lib/``).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import glob
import gzip
import importlib.util
import io
import json
import math
import multiprocessing
import os
import queue
import re
import resource
import shutil
import struct
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Generic, NoReturn, Protocol, TextIO, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq


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

# What Preprocess reads, chosen per object by its name's ending (case-insensitive) unless
# --input-format names one format for every object. ``.json`` is not among them: it is as
# often one JSON document (an array) as JSON Lines; --input-format jsonl reads it as lines.
INPUT_FORMATS = ("auto", "csv", "parquet", "jsonl")
EXTENSIONS = {
    ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet",
    ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".ndjson": "jsonl", ".ndjson.gz": "jsonl",
}  # fmt: skip
# what a damaged gzip stream raises, from the gzip module or from pyarrow's reader
_GZIP_ERRORS = (OSError, EOFError, zlib.error)

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
    format: str = "csv"
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


def part_name(name: Path, number: int) -> Path:
    """The ``number``-th part of a file's rows: ``<name>.part-00001``. Every other output
    name ends in ``.csv``, so a part can never take another input's name."""
    return Path(f"{name}.part-{number:05d}")


class _Parts:
    """A file's valid rows, written to ``path`` until ``limit`` bytes, then to parts of about
    that size (``path`` itself becomes ``part_name(path, 1)``): the Transform fleet scores
    a day's rows as many objects, not one. Opened on first write, like ``_LazyWriter``."""

    def __init__(self, path: Path, limit: int | None = None):
        self.path, self.limit = path, limit
        self.handle: BinaryIO | None = None
        self.parts = self.written = 0

    def write(self, data: bytes) -> None:
        if self.handle is None:
            self.parts += 1
            if self.parts == 2:  # the first part gets its number with the second
                self.path.rename(part_name(self.path, 1))
            target = self.path if self.parts == 1 else part_name(self.path, self.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.handle, self.written = target.open("wb"), 0
        self.handle.write(data)
        self.written += len(data)
        if self.limit is not None and self.written >= self.limit:
            self.close()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def input_format(path: Path, forced: str = "auto") -> str | None:
    """The format ``path`` is read in: ``forced`` unless ``auto``, else its name's ending's
    (``EXTENSIONS``), or None: not input, listed in the summary's ``ignored_files``."""
    if forced != "auto":
        return forced
    name = path.name.lower()
    return next((kind for ending, kind in EXTENSIONS.items() if name.endswith(ending)), None)


def gzipped(path: Path) -> bool:
    """Whether the object is read through gzip: its name ends in ``.gz``, whatever the format."""
    return path.name.lower().endswith(".gz")


def _open_binary(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if gzipped(path) else path.open("rb")  # type: ignore[return-value]


def _open_text(path: Path, errors: str = "strict") -> TextIO:
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors=errors, newline="")


def output_name(relative: Path) -> Path:
    """Where a file's rows go under ``inference/`` and ``rejected/``: both hold CSV, so an
    input not named ``.csv`` gets ``.csv`` added (``a.parquet`` -> ``a.parquet.csv``; never
    a replaced ending, which would make ``a.csv`` and ``a.csv.gz`` write the same file)."""
    return relative if relative.name.lower().endswith(".csv") else Path(f"{relative}.csv")


def read_header(path: Path) -> list[str] | None:
    """The header row, or ``None`` for an empty file (gzip-compressed when named ``.gz``)."""
    with _open_text(path) as handle:
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
    if feature is not None and feature.type == "float":
        typed = _finite_floats(values)
        if typed is not None:
            return typed, pc.is_valid(typed)
    trimmed = pc.utf8_trim_whitespace(values)
    pattern = None if feature is None else _PATTERNS[feature.type]
    nullable = feature is not None and feature.nullable
    if pattern is not None and not nullable:
        # the number patterns need a digit: an empty value fails them, no length test needed
        valid = pc.match_substring_regex(trimmed, pattern)
    else:
        present = pc.cast(pc.utf8_length(trimmed), pa.bool_())  # a length > 0
        well_formed = present if pattern is None else pc.match_substring_regex(trimmed, pattern)
        valid = pc.or_(well_formed, pc.invert(present)) if nullable else well_formed
    valid = _false_if_null(valid)
    if feature is None or feature.type == "string":
        # a quoted line break would split the record in two for Batch Transform (one per line)
        breaks = pc.or_(pc.match_substring(trimmed, "\n"), pc.match_substring(trimmed, "\r"))
        return trimmed, pc.and_(valid, pc.invert(breaks))
    return _cast_numbers(feature, trimmed, valid)


# pyarrow imports pandas (0.5 s and 60 MB a process) the first time it converts a Python
# scalar or an array to numpy: the common path does neither


def _false_if_null(mask: pa.Array) -> pa.Array:
    """``fill_null(mask, False)``, without a Python scalar."""
    return pc.and_kleene(mask, pc.is_valid(mask))


def _floats(column: pa.ChunkedArray) -> np.ndarray:
    """A float64 column as numpy, null as NaN: its buffers read directly when it has no
    null (the common case), else through ``to_numpy``."""
    if column.null_count:
        return column.to_numpy()
    parts = [
        np.frombuffer(chunk.buffers()[1], np.float64, len(chunk), chunk.offset * 8)
        for chunk in column.chunks
        if len(chunk)
    ]
    return np.concatenate(parts) if len(parts) != 1 else parts[0]


def _finite_floats(values: pa.Array) -> pa.Array | None:
    """A float column whose every value casts to a finite number, cast; else None.

    The common case skips the trim, the pattern and the checks that find a bad value:
    pyarrow's float parser accepts no string as a finite number that ``_NUMBER`` refuses
    (no blank, sign or letter the pattern lacks; tests hold this over every short string
    of digits, signs, points, exponents, letters and blanks), so the cast alone decides."""
    try:
        typed = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        return None
    if typed.null_count or not pc.all(pc.is_finite(typed)).as_py():
        return None
    return typed


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
    present = pc.cast(pc.utf8_length(trimmed), pa.bool_())  # a length > 0
    text = pc.if_else(pc.and_(valid, present), trimmed, pa.nulls(len(trimmed), pa.string()))
    if feature.type == "int":  # the pattern allows "+1"; pyarrow's integer cast does not
        text = pc.replace_substring_regex(text, r"^\+", "")
    target = _ARROW_TYPES[feature.type]
    try:
        typed = pc.cast(text, target)
    except pa.ArrowInvalid:  # one value the cast refuses: find it, value by value
        typed = pa.array([_cast_one(value, target) for value in text.to_pylist()], target)
        valid = pc.and_(valid, pc.or_(pc.is_null(text), pc.is_valid(typed)))
    if feature.type == "float":
        valid = pc.and_(valid, pc.or_kleene(pc.is_finite(typed), pc.is_null(typed)))
    return typed, _false_if_null(valid)


def _cast_one(value: str | None, target: pa.DataType) -> Any:
    """One value cast as the column's cast would, or None when it cannot be. The one-value
    array is made from its bytes: converting a Python list would make pyarrow import pandas
    (0.5 s and 60 MB in every process that rejects a row)."""
    if value is None:
        return None
    data = value.encode("utf-8")
    offsets = pa.py_buffer(struct.pack("<2i", 0, len(data)))
    text = pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        return pc.cast(text, target)[0].as_py()
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
    "field_count", "malformed_record", "missing_id", "missing_column", "missing_value",
    "wrong_type", "line_break", "whole_file", "other",
)  # fmt: skip
# the raw line of a JSON Lines record, carried beside its values into rejected/ for replay
_RECORD = "\x00record"


class _Unreadable(Exception):
    """The file cannot be read row by row: it goes whole to rejected/whole-files/.
    ``records`` is its row count when known (Parquet's footer), else None: counted there."""

    def __init__(self, reason: str, records: int | None = None):
        super().__init__(reason)
        self.reason, self.records = reason, records


class _Rows:
    """One file's rows on their way out, whatever its format: valid rows to ``inference/``
    (headerless CSV in schema order), invalid ones to ``rejected/`` with their reason, every
    row counted once, the valid ones fed to the drift measures."""

    def __init__(
        self,
        relative: Path,
        schema: Schema,
        output_dir: Path,
        kind: str,
        drift: quality.BatchDrift | None,
        part_bytes: int | None = None,
        piece: int = 0,
    ):
        self.schema, self.drift = schema, drift
        self.summary = FileSummary(file=relative.as_posix(), format=kind)
        self.missing: list[str] = []  # schema columns the file lacks (nulls, or rejections)
        name = output_name(relative)
        if piece:  # one range of a split file: its own part, its rejections merged later
            self.inference = _Parts(output_dir / "inference" / part_name(name, piece))
            rejected = output_dir / "rejected" / part_name(name, piece)
        else:
            self.inference = _Parts(output_dir / "inference" / name, part_bytes)
            rejected = output_dir / "rejected" / name
        self.rejected = _LazyWriter(rejected, _open_rejected)

    def reject(self, identifier: str, kind: str, reason: str, record: str) -> None:
        """One rejected row, already counted as read."""
        csv.writer(self.rejected.get()).writerow((identifier, reason, record))
        self.summary.count_rejection(kind)

    def add(self, batch: pa.RecordBatch) -> None:
        """Check one block: string columns named as the schema's (those the file has), and
        ``_RECORD`` (the record as read) when the format keeps one."""
        self.summary.rows_read += batch.num_rows
        valid_rows, invalid_rows = _split_batch(batch, self.schema, self.missing)
        if valid_rows.num_rows:
            _write_csv(valid_rows, self.inference)
            self.summary.rows_written += valid_rows.num_rows
            if self.drift is not None:
                _observe(self.drift, valid_rows)
        missing = set(self.missing)
        for row in invalid_rows:
            kind, reason = _reason(self.schema, row, missing)
            record = row.get(_RECORD)
            if record is None:
                record = _record_text([row.get(c) for c in self.schema.columns])
            self.reject(row.get(self.schema.id_column) or "", kind, reason, record)

    def close(self) -> None:
        self.inference.close()
        self.rejected.close()


def process_file(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    block_size: int = DEFAULT_BLOCK_SIZE,
    drift: quality.BatchDrift | None = None,
    kind: str = "csv",
    part_bytes: int | None = None,
) -> FileSummary:
    """Validate one file (``kind``: csv, parquet or jsonl), streaming it block by block;
    valid rows feed ``drift``; its valid rows go to parts of about ``part_bytes`` (one file
    when None).

    A file that cannot be read row by row goes whole to ``rejected/whole-files/``: nothing of
    it is lost, and its rows count as rejected. What a failed attempt wrote is removed, and
    what it measured is dropped: only a read that reaches the file's end counts.
    """
    if kind == "csv":
        return _process_csv(path, relative, schema, output_dir, block_size, drift, part_bytes)
    if path.stat().st_size == 0:
        return FileSummary(file=relative.as_posix(), format=kind, note="empty file")
    attempt = drift.fresh() if drift is not None else None
    rows = _Rows(relative, schema, output_dir, kind, attempt, part_bytes)
    try:
        (_read_parquet if kind == "parquet" else _read_json_lines)(path, rows, block_size)
    except _Unreadable as error:
        rows.close()
        _remove_outputs(output_dir, relative)
        return _quarantine(
            path, relative, schema, output_dir, error.reason, False, kind, error.records
        )
    finally:
        rows.close()
    if drift is not None and attempt is not None:
        drift.merge(attempt)
    return rows.summary


def _remove_outputs(output_dir: Path, relative: Path) -> None:
    """What an attempt at one file wrote: its file or parts, its rejections."""
    name = output_name(relative)
    for folder in (output_dir / "inference", output_dir / "rejected"):
        (folder / name).unlink(missing_ok=True)
        parent = (folder / name).parent
        if parent.is_dir():
            for part in parent.glob(f"{glob.escape(name.name)}.part-*"):
                part.unlink()


def _process_csv(
    path: Path,
    relative: Path,
    schema: Schema,
    output_dir: Path,
    block_size: int,
    drift: quality.BatchDrift | None,
    part_bytes: int | None = None,
) -> FileSummary:
    """A CSV file (gzip-compressed when named ``.gz``): its header first, then its rows."""
    header = csv_header(path, relative, schema, output_dir)
    if isinstance(header, FileSummary):
        return header
    # Blocks are cut at line breaks without parsing quotes (fast); a quoted line break that a
    # block boundary falls after makes pyarrow stop, and the file is read again parsing them.
    quoted_breaks = False
    while True:
        # what this attempt sees is added to the batch only if the attempt reads the file
        attempt = drift.fresh() if drift is not None else None
        try:
            summary = _read_rows(
                path, relative, schema, output_dir, header, block_size, quoted_breaks, attempt,
                part_bytes,
            )  # fmt: skip
        except _Unreadable as error:  # the gzip stream is damaged past the header
            _remove_outputs(output_dir, relative)
            return _quarantine(path, relative, schema, output_dir, error.reason, True)
        except pa.ArrowInvalid as error:
            _remove_outputs(output_dir, relative)  # what the failed attempt wrote
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


def csv_header(
    path: Path, relative: Path, schema: Schema, output_dir: Path
) -> list[str] | FileSummary:
    """A CSV file's header, or the file's summary when it ends there: empty, or quarantined
    for a header that cannot name the schema's columns."""
    try:
        header = read_header(path)
    except UnicodeDecodeError as error:
        return _quarantine(path, relative, schema, output_dir, f"not UTF-8 text ({error.reason})")
    except csv.Error as error:  # e.g. a first field over the csv module's 128 KiB limit
        return _quarantine(path, relative, schema, output_dir, f"unreadable header: {error}")
    except _GZIP_ERRORS as error:
        return _quarantine(path, relative, schema, output_dir, _gzip_problem(error))
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
    return header


def _gzip_problem(error: BaseException) -> str:
    """Why a ``.gz`` file cannot be read, and the fix when it is plainly not gzip at all."""
    detail = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, gzip.BadGzipFile) or "incorrect header check" in detail:
        return f"not readable gzip data ({detail}); if it is not compressed, drop .gz from its name"
    return f"not readable gzip data ({detail}); upload it again whole"


def _once(names: list[str]) -> set[str]:
    """The names that appear exactly once."""
    return {name for name in names if names.count(name) == 1}


def _header_problem(path: Path, schema: Schema) -> tuple[str, bool]:
    """Why a header without the id column is not the schema's, as precisely as can be said,
    and whether the first line is a header at all (else it is a record, counted as one)."""
    with _open_text(path, errors="replace") as handle:
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
    kind: str = "csv",
    records: int | None = None,
) -> FileSummary:
    """Copy the file byte for byte to rejected/whole-files/; count its records as rejected:
    ``records`` when the format knows them (Parquet's footer), else its non-blank lines as
    far as they can be read (the first one too unless it is a header: ``is_header``, or
    guessed when unknown). A Parquet file without a readable footer counts 0: unknown."""
    target = output_dir / "rejected" / WHOLE_FILES / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    if records is None and kind == "parquet":
        records, reason = 0, f"{reason}; its rows cannot be counted"
    if records is None:
        count = _LineCount()
        try:
            count.read(_open_binary(path))
        except gzip.BadGzipFile:  # named .gz but not gzip: its lines as they are
            count = _LineCount()
            count.read(path.open("rb"))
        except _GZIP_ERRORS:
            reason = f"{reason}; its rows are counted up to the damage"
        lines, first = count.lines, count.first
        if first is not None and is_header is None:
            is_header = looks_like_a_header(first)
        records = lines - 1 if first is not None and is_header else lines
    summary = FileSummary(
        file=relative.as_posix(),
        format=kind,
        rows_read=records,
        note=f"rejected whole: {reason}",
        quarantined_to=f"rejected/{WHOLE_FILES}/{relative.as_posix()}",
    )
    summary.count_rejection("whole_file", records)
    return summary


@dataclass
class _LineCount:
    """A file's non-blank lines and the first of them, counted as read: a read that fails
    half-way (a damaged gzip stream) still says how far it came."""

    lines: int = 0
    first: bytes | None = None

    def read(self, handle: BinaryIO) -> None:
        with handle:
            for line in handle:
                if line.strip():
                    self.lines += 1
                    self.first = line if self.first is None else self.first


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
    part_bytes: int | None = None,
    span: Span | None = None,
) -> FileSummary:
    """One pass over a CSV file's rows (only ``span``'s, when given); raises
    ``pa.ArrowInvalid`` when pyarrow cannot go on, ``_Unreadable`` when its gzip stream is
    damaged, ``_Quoted`` when ``span`` holds a quote."""
    rows = _Rows(relative, schema, output_dir, "csv", drift, part_bytes, span.piece if span else 0)
    summary = rows.summary
    rows.missing = [c for c in schema.columns if c not in header]
    summary.missing_columns = rows.missing
    summary.ignored_columns = [c for c in header if c not in schema.columns]
    present = [c for c in schema.columns if c in header]
    # pyarrow may call the handler from its read-ahead thread while this one works on the
    # previous block, so rows are handed over through a thread-safe queue: each row taken
    # from it is counted and rejected together, and none can slip between the two.
    malformed: queue.SimpleQueue[pacsv.InvalidRow] = queue.SimpleQueue()

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        malformed.put(row)
        return "skip"

    def flush_malformed() -> None:
        while not malformed.empty():
            row = malformed.get_nowait()
            summary.rows_read += 1
            # a span's numbers start at its own first line: _join_rejected adds the lines
            # before it
            reason = (
                f"line {row.number}: expected {row.expected_columns} fields, "
                f"found {row.actual_columns}"
            )
            rows.reject("", "field_count", reason, row.text)

    share = _Range(path, span.start, span.end) if span is not None else None
    try:
        with (
            pa.PythonFile(share, mode="r")
            if share is not None
            else pa.input_stream(str(path), compression="gzip" if gzipped(path) else None)
        ) as source:
            opened = _reading(
                lambda: pacsv.open_csv(
                    source,
                    # the header's names as read_header stripped them ("id, age" names "age")
                    read_options=pacsv.ReadOptions(
                        block_size=block_size, use_threads=False, column_names=header,
                        skip_rows=0 if span is not None and span.start else 1,
                    ),
                    parse_options=pacsv.ParseOptions(
                        invalid_row_handler=on_invalid_row, newlines_in_values=quoted_breaks
                    ),
                    convert_options=pacsv.ConvertOptions(
                        include_columns=present,
                        column_types={c: pa.string() for c in present},
                        strings_can_be_null=False,
                    ),
                ),
                OSError,  # pyarrow's decompression: a truncated or damaged gzip stream
                _gzip_problem,
            )  # fmt: skip
            for batch in _read_each(opened, OSError, _gzip_problem):
                if share is not None and share.quoted:
                    raise _Quoted
                flush_malformed()
                rows.add(batch)
        if share is not None and share.quoted:
            raise _Quoted
        flush_malformed()
    finally:
        rows.close()
    return summary


@dataclass(frozen=True)
class Span:
    """Bytes ``start`` to ``end`` of a CSV file, whole lines, read by one worker; its rows
    go to the file's part number ``piece``."""

    start: int
    end: int
    piece: int


class _Quoted(Exception):
    """A span holds a quote: the file is read whole instead (see ``_Range``)."""


class _Range(io.RawIOBase):
    """The bytes of one span, for pyarrow's reader. A quote in them ends the read early with
    ``quoted`` set: a quoted field may hold a line break, and a span cut at a line break
    inside one would misread both halves (finding that out needs the file from its start)."""

    def __init__(self, path: Path, start: int, end: int):
        super().__init__()
        self._file = path.open("rb")
        self._file.seek(start)
        self.left, self.quoted = end - start, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.quoted or self.left <= 0:
            return 0
        view = memoryview(buffer).cast("B")[: self.left]
        count = self._file.readinto(view)
        if view[:count].tobytes().find(b'"') >= 0:
            self.quoted = True
            return 0
        self.left -= count
        return count

    def close(self) -> None:
        self._file.close()
        super().close()


def spans(path: Path, size: int, span_bytes: int) -> list[Span]:
    """``path`` cut into spans of about ``span_bytes``, each ending after a line break (a
    line longer than a span joins two)."""
    cuts = [0]
    with path.open("rb") as handle:
        for target in range(span_bytes, size, span_bytes):
            if target <= cuts[-1]:
                continue
            handle.seek(target - 1)
            while chunk := handle.read(1 << 16):
                if (found := chunk.find(b"\n")) >= 0:
                    cuts.append(handle.tell() - len(chunk) + found + 1)
                    break
            else:
                break
    if cuts[-1] >= size:
        cuts.pop()
    pairs = zip(cuts, [*cuts[1:], size], strict=True)
    return [Span(start, end, piece) for piece, (start, end) in enumerate(pairs, 1)]


_Item = TypeVar("_Item")


def _reading(
    read: Callable[[], _Item],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    problem: Callable[[BaseException], str],
    records: int | None = None,
) -> _Item:
    """``read()``, its ``errors`` turned into ``_Unreadable(problem(error))``: only a read
    makes a file unreadable, never a write (an output that cannot be written stops the job)."""
    try:
        return read()
    except errors as error:
        raise _Unreadable(problem(error), records) from None


def _read_each(
    items: Iterable[_Item],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    problem: Callable[[BaseException], str],
    records: int | None = None,
) -> Iterable[_Item]:
    """The items, each read through ``_reading``."""
    iterator = iter(items)
    done = object()
    while (item := _reading(lambda: next(iterator, done), errors, problem, records)) is not done:
        yield item  # type: ignore[misc]


_JSON_TYPES = {"int": "an int", "float": "a float", "string": "a string"}


class _JsonInt(str):
    """An integer's JSON text, as written: checked and cast like the same CSV value."""


class _JsonFloat(str):
    """Another number's JSON text, as written (``NaN`` and ``Infinity`` too, to be refused)."""


_JSON = json.JSONDecoder(parse_int=_JsonInt, parse_float=_JsonFloat, parse_constant=_JsonFloat)


def _json_kind(value: object) -> str:
    if isinstance(value, _JsonInt | _JsonFloat):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    return "object" if isinstance(value, dict) else "array"


def _json_problem(schema: Schema, record: dict[str, Any]) -> str | None:
    """The first value (schema order) whose JSON type the schema's type cannot take: an int
    or a float is a JSON number, a string a JSON string, an id a string or an integer; a
    missing key or null is an empty value, as an empty CSV field."""
    for feature in (None, *schema.features):
        name = schema.id_column if feature is None else feature.name
        value = record.get(name)
        if value is None:
            continue
        if feature is None:
            accepted: tuple[type, ...] = (str, _JsonInt)
            wanted, where = "a string or an integer", f"id column {name!r}"
        else:
            # a number that is not an integer is refused as CSV's "1.5" is, by the value check
            numbers = (_JsonInt, _JsonFloat)
            accepted = numbers if feature.type in ("int", "float") else (str,)
            wanted, where = _JSON_TYPES[feature.type], repr(name)
        if type(value) not in accepted:
            kind = _json_kind(value)
            shown = ""  # an object or an array is named, not shown
            if kind not in ("object", "array"):
                text = value if kind == "number" else json.dumps(value)
                shown = f"{text[:40]}... " if len(text) > 40 else f"{text} "
            return f"{where}: {shown}is a JSON {kind}, not {wanted}"
    return None


def _read_json_lines(path: Path, rows: _Rows, block_size: int) -> None:
    """A JSON Lines file (gzip-compressed when named ``.gz``), one object per line, in blocks
    of about ``block_size`` bytes. A line that is not UTF-8, not JSON, not an object or has a
    value of the wrong JSON type is one rejected row; the values of the others go through
    the same checks as CSV's, as the text they were written with."""
    schema = rows.schema
    columns = schema.columns
    seen: set[str] = set()
    values: list[list[str]] = [[] for _ in columns]
    records: list[str] = []
    pending = 0

    def flush() -> None:
        nonlocal values, records, pending
        if records:
            arrays = [pa.array(v, pa.string()) for v in values]
            rows.add(
                pa.record_batch([*arrays, pa.array(records, pa.string())], [*columns, _RECORD])
            )
        values, records, pending = [[] for _ in columns], [], 0

    def refuse(identifier: object, kind: str, reason: str, record: str) -> None:
        rows.summary.rows_read += 1
        shown = identifier if type(identifier) in (str, _JsonInt) else ""
        rows.reject(str(shown), kind, reason, record)

    with _reading(lambda: _open_binary(path), _GZIP_ERRORS, _gzip_problem) as handle:
        for number, raw in enumerate(_read_each(handle, _GZIP_ERRORS, _gzip_problem), 1):
            line = raw.strip()
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf").strip()
            if not line:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                reason = f"line {number}: not UTF-8 text ({error.reason})"
                refuse("", "malformed_record", reason, line.decode("utf-8", "replace"))
                continue
            try:
                record = _JSON.decode(text)
            except (ValueError, RecursionError) as error:
                detail = (
                    f"{error.msg} at column {error.colno}"
                    if isinstance(error, json.JSONDecodeError)
                    else "nested too deeply"
                )
                reason = f"line {number}: not JSON ({detail})"
                refuse("", "malformed_record", reason, text)
                continue
            if not isinstance(record, dict):
                reason = f"line {number}: a JSON {_json_kind(record)}, not an object"
                refuse("", "malformed_record", reason, text)
                continue
            seen.update(record)
            if problem := _json_problem(schema, record):
                refuse(record.get(schema.id_column), "wrong_type", problem, text)
                continue
            for column, name in zip(values, columns, strict=True):
                value = record.get(name)
                column.append("" if value is None else str(value))
            records.append(text)
            pending += len(line)
            if pending >= block_size:
                flush()
    flush()
    if rows.summary.rows_read:
        rows.summary.missing_columns = [c for c in columns if c not in seen]
    rows.summary.ignored_columns = sorted(seen - set(columns))[:50]
    if not rows.summary.rows_read:
        rows.summary.note = "empty file"


# Parquet types each schema type takes (a dictionary column: its values' type)
_PARQUET_TYPES: dict[str | None, tuple[Callable[[pa.DataType], bool], ...]] = {
    None: (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer),
    "int": (pa.types.is_integer,),
    "float": (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal),
    "string": (pa.types.is_string, pa.types.is_large_string),
}
_PARQUET_WANTED = {
    None: "strings or integers", "int": "integers", "float": "numbers", "string": "strings",
}  # fmt: skip


def _row_group_count(path: Path) -> int:
    """A Parquet file's row groups, 0 when its footer cannot be read (it is then read whole,
    and quarantined as such)."""
    try:
        return pq.ParquetFile(path).metadata.num_row_groups
    except _PARQUET_ERRORS:
        return 0


def _read_parquet(
    path: Path, rows: _Rows, block_size: int, row_groups: list[int] | None = None
) -> None:
    """A Parquet file, by record batches of the schema's columns only (never the whole file:
    memory follows the batch and the row group, not the file). Its columns are checked
    against the schema first; each batch is then cast to text and goes through the same
    checks as CSV's values (NaN or infinity refused, strings trimmed), so a row gives the
    same output line in every format."""
    schema = rows.schema
    # pre-buffering reads a row group's column chunks whole and holds them (memory grew with
    # the file: 162 -> 300 MiB from 1 to 10 million rows); buffered reads of block_size do not
    parquet = _reading(
        lambda: pq.ParquetFile(path, pre_buffer=False, buffer_size=block_size),
        _PARQUET_ERRORS,
        _parquet_problem,
    )
    fields = parquet.schema_arrow
    total = parquet.metadata.num_rows
    names = fields.names
    repeated = sorted({n for n in names if n in schema.columns} - _once(names))
    if repeated:
        shown = ", ".join(repr(n) for n in repeated)
        raise _Unreadable(f"it names {shown} more than once; keep one column of each name", total)
    lacking = [
        c for c in schema.columns
        if c not in names and (c == schema.id_column or not _feature(schema, c).nullable)
    ]  # fmt: skip
    if lacking:
        shown = ", ".join(repr(c) for c in lacking)
        raise _Unreadable(
            f"it lacks the column(s) {shown}; a Parquet file must hold the id and every "
            "non-nullable feature of the schema",
            total,
        )
    for name in (c for c in schema.columns if c in names):
        feature = None if name == schema.id_column else _feature(schema, name)
        kind = fields.field(name).type
        value_kind = kind.value_type if pa.types.is_dictionary(kind) else kind
        tests = _PARQUET_TYPES[None if feature is None else feature.type]
        if not pa.types.is_null(value_kind) and not any(test(value_kind) for test in tests):
            wanted = _PARQUET_WANTED[None if feature is None else feature.type]
            raise _Unreadable(
                f"its column {name!r} holds {kind}, the schema's {name!r} needs {wanted}; "
                "write it with a type the schema takes",
                total,
            )
    rows.missing = [c for c in schema.columns if c not in names]
    rows.summary.missing_columns = rows.missing
    rows.summary.ignored_columns = [n for n in names if n not in schema.columns]
    present = [c for c in schema.columns if c in names]
    batches = parquet.iter_batches(
        batch_size=max(1024, block_size // 64),
        row_groups=row_groups,
        columns=present,
        use_threads=False,
    )
    for batch in _read_each(batches, _PARQUET_ERRORS, _parquet_problem, total):
        text = [pc.fill_null(pc.cast(batch.column(n), pa.string()), "") for n in present]
        rows.add(pa.record_batch(text, present))


_PARQUET_ERRORS = (pa.ArrowException, OSError)


def _parquet_problem(error: BaseException) -> str:
    return f"not a readable Parquet file ({' '.join(str(error).split())})"


def _feature(schema: Schema, name: str) -> Feature:
    return next(f for f in schema.features if f.name == name)


def _observe(drift: quality.BatchDrift, rows: pa.Table) -> None:
    """Feed one block of valid, typed rows to the drift measures (columnar: no row loop)."""
    for name, feature in drift.features.items():
        column = rows.column(name)
        if feature.baseline["type"] == "numeric":
            feature.update(_floats(pc.cast(column, pa.float64())))
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
    # built without a Python list: converting one makes pyarrow import pandas (0.5 s a process)
    valid = pc.is_null(pa.nulls(rows))
    for feature, name in zip((None, *schema.features), schema.columns, strict=True):
        if name in missing:
            if feature is None or not feature.nullable:
                valid = pc.is_valid(pa.nulls(rows))
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


class _Sink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


def _write_csv(table: pa.Table, sink: _Sink) -> None:
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


@dataclass(frozen=True)
class _Job:
    """What every unit of work shares; sent to a worker with each unit."""

    schema: Schema
    output_dir: Path
    block_size: int
    drift: quality.BatchDrift | None  # an empty tracker: each unit fills its own copy
    part_bytes: int | None


@dataclass(frozen=True)
class _Unit:
    """One file, one span of a large plain CSV file (with the file's checked header), or
    some row groups of a large Parquet file (its part number ``piece``)."""

    index: int
    path: Path
    relative: Path
    kind: str
    size: int
    span: Span | None = None
    header: tuple[str, ...] = ()
    groups: tuple[int, ...] = ()
    piece: int = 0

    @property
    def split(self) -> bool:
        return self.span is not None or bool(self.groups)


@dataclass
class _Done:
    """A unit's counts and drift; ``summary`` None: a span that must be read with its file.
    ``process`` and ``peak_mb``: which process read it, and that process's peak memory."""

    summary: FileSummary | None
    drift: quality.BatchDrift | None
    process: int = 0
    peak_mb: float = 0.0


def peak_memory_mb() -> float:
    """This process's peak resident memory so far: ``VmHWM`` where Linux reports it (it is
    the process's own, where ``ru_maxrss`` may carry a parent's peak), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_unit(job: _Job, unit: _Unit) -> _Done:
    """Read one unit into its own outputs (in a worker process, or in this one)."""
    drift = job.drift.fresh() if job.drift is not None else None
    summary: FileSummary | None
    if unit.groups:
        rows = _Rows(unit.relative, job.schema, job.output_dir, "parquet", drift, None, unit.piece)
        try:
            _read_parquet(unit.path, rows, job.block_size, list(unit.groups))
            summary = rows.summary
        except _Unreadable:
            summary, drift = None, None
        finally:
            rows.close()
    elif unit.span is None:
        summary = process_file(
            unit.path, unit.relative, job.schema, job.output_dir, job.block_size, drift,
            unit.kind, job.part_bytes,
        )  # fmt: skip
    else:
        try:
            summary = _read_rows(
                unit.path, unit.relative, job.schema, job.output_dir, list(unit.header),
                job.block_size, False, drift, None, unit.span,
            )  # fmt: skip
        except (pa.ArrowInvalid, _Unreadable, _Quoted):
            summary, drift = None, None
    return _Done(summary, drift, os.getpid(), peak_memory_mb())


def _execute(job: _Job, units: list[_Unit], workers: int) -> list[_Done]:
    """Every unit, by ``workers`` processes side by side (the largest first, so the last to
    finish is small), or here when one is enough; results in the units' order."""
    if workers <= 1 or len(units) <= 1:
        return [_run_unit(job, unit) for unit in units]
    # forkserver, not fork: the caller may hold pyarrow's threads, which fork would copy
    # mid-work; each worker starts from a clean process with the modules loaded once
    context = multiprocessing.get_context("forkserver")
    # imported once in the server, not in each worker
    context.set_forkserver_preload(["__main__", "pyarrow.compute", "pyarrow.csv"])
    with concurrent.futures.ProcessPoolExecutor(workers, context) as pool:
        order = sorted(range(len(units)), key=lambda i: -units[i].size)
        futures = {i: pool.submit(_run_unit, job, units[i]) for i in order}
        return [futures[i].result() for i in range(len(units))]


REJECTED_HEADER = b"id,reason,record\r\n"  # what _open_rejected writes first
_MALFORMED = re.compile(r"line (\d+)(: expected \d+ fields, found \d+)")


def _join_rejected(output_dir: Path, relative: Path, lines: list[int]) -> None:
    """A split file's rejections, one file again: each span's in order, one header.

    pyarrow numbers a span's lines from its start (blank lines not counted; the header is
    the first span's line 1); ``lines`` holds each span's count of the lines it numbered
    (its rows read), so a row with the wrong number of fields gets the line number it has
    read whole. Only those rows' reasons change: the others are copied as written."""
    name = output_name(relative)
    target = output_dir / "rejected" / name
    written = False
    before = 1  # the header
    for piece, counted in enumerate(lines, start=1):
        part = output_dir / "rejected" / part_name(name, piece)
        if part.is_file():
            with target.open("ab" if written else "wb") as sink:
                if piece == 1:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, sink, 1 << 20)
                else:
                    _renumbered(part, sink, before, header=not written)
            part.unlink()
            written = True
        before += counted


def _renumbered(part: Path, sink: BinaryIO, offset: int, header: bool) -> None:
    """One later span's rejections (its header only when it is the first written), each
    malformed row's line moved by ``offset``, written back by the same CSV writer (the
    same bytes for every other row)."""
    with part.open(encoding="utf-8", newline="") as source:
        rows = csv.reader(source)
        if not header:
            next(rows)
        text = io.StringIO(newline="")
        writer = csv.writer(text)
        for row in rows:
            found = _MALFORMED.fullmatch(row[1]) if len(row) == 3 and not row[0] else None
            if found:
                row[1] = f"line {int(found.group(1)) + offset}{found.group(2)}"
            writer.writerow(row)
            if text.tell() >= 1 << 20:
                sink.write(text.getvalue().encode("utf-8"))
                text.seek(0)
                text.truncate()
        sink.write(text.getvalue().encode("utf-8"))


def _merge_spans(
    job: _Job, unit: _Unit, done: list[_Done], drift: quality.BatchDrift | None
) -> FileSummary:
    """One file from its spans' results; read again whole (in this process) when a span
    could not be read on its own: a quote, a record over the block size, a bad byte."""
    if any(d.summary is None for d in done):
        _remove_outputs(job.output_dir, unit.relative)
        return process_file(
            unit.path, unit.relative, job.schema, job.output_dir, job.block_size, drift,
            unit.kind, job.part_bytes,
        )  # fmt: skip
    _join_rejected(job.output_dir, unit.relative, [d.summary.rows_read for d in done if d.summary])
    merged = FileSummary(file=unit.relative.as_posix(), format=unit.kind)
    for part in done:
        assert part.summary is not None
        merged.missing_columns = part.summary.missing_columns
        merged.ignored_columns = part.summary.ignored_columns
        merged.rows_read += part.summary.rows_read
        merged.rows_written += part.summary.rows_written
        for kind, count in part.summary.rejected_by_reason.items():
            merged.count_rejection(kind, count)
        if drift is not None and part.drift is not None:
            drift.merge(part.drift)
    return merged


# a part smaller than this is not worth a worker or a Transform object of its own
MIN_PART_BYTES = 16 << 20
SPANS_PER_WORKER = 2  # a large file's spans per worker: the last to finish waits less
# bytes of CSV per byte of input when the output's size is estimated before reading
_EXPANSION = {"gzip": 4.0, "parquet": 3.0}


# a worker's peak memory at the default block size, with the drift measures (measured:
# docs/benchmarks.md): what --max-memory-mb is divided by
WORKER_MEMORY_MB = 200


def available_cpus() -> int:
    """The vCPUs this process may run on (the instance's, in a Processing job)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def instance_memory_mb() -> int:
    """The instance's memory (a Processing job's container has the whole instance)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError, AttributeError):
        return 4096


def sizing_for(
    workers: int,
    max_memory_mb: int,
    transform_instances: int,
    transform_concurrency: int,
    min_part_mb: int = MIN_PART_BYTES >> 20,
) -> tuple[Sizing, str]:
    """How many workers (asked for, or one per vCPU; never more than the memory setting
    holds) and how many parts (the Transform fleet's request slots, shared by the
    Processing instances, each of which cuts its own share), and a line saying so."""
    memory = max_memory_mb or instance_memory_mb() * 3 // 4
    wanted = workers or available_cpus()
    held = max(1, memory // WORKER_MEMORY_MB)
    count = min(wanted, held)
    parts = math.ceil(transform_instances * transform_concurrency / host_count())
    note = f"{count} worker(s)"
    if count < wanted:
        note += f" of {wanted} ({memory} MB of memory holds {held} at {WORKER_MEMORY_MB} MB)"
    sizing = Sizing(count, parts, min_part_mb << 20)
    return sizing, f"{note}, output for {parts} Transform request slot(s)"


@dataclass(frozen=True)
class Sizing:
    """How the inference output is cut: ``parts`` objects for the Transform fleet (its
    instances x the requests each serves at once, divided among Processing instances),
    read by ``workers`` processes."""

    workers: int = 1
    parts: int = 1
    min_part_bytes: int = MIN_PART_BYTES  # smaller input is read here, by one process


def _estimated_output(path: Path, kind: str, size: int) -> float:
    if kind == "parquet":
        return size * _EXPANSION["parquet"]
    return size * (_EXPANSION["gzip"] if gzipped(path) else 1.0)


def _plan(
    files: list[tuple[Path, str]], input_dir: Path, schema: Schema, output_dir: Path,
    sizing: Sizing,
) -> tuple[list[_Unit], dict[int, FileSummary], int | None]:  # fmt: skip
    """The units of work, the files already done (a header that ends them), the part size.

    A plain CSV file larger than its share is cut into spans of whole lines, so one large
    file keeps every worker busy and becomes one part per span; every other file is one unit,
    whose output rolls over into parts of ``part_bytes``."""
    sizes = [path.stat().st_size for path, _ in files]
    estimate = sum(_estimated_output(p, k, n) for (p, k), n in zip(files, sizes, strict=True))
    least = sizing.min_part_bytes
    part_bytes = max(least, math.ceil(estimate / sizing.parts)) if sizing.parts > 1 else None
    # what a plain CSV file's spans and a Parquet file's row groups are cut by: the CSV they
    # write (a CSV file's own bytes; a Parquet file's estimated from its compressed ones)
    weights = [
        n if kind == "csv" else _estimated_output(p, kind, n)
        for (p, kind), n in zip(files, sizes, strict=True)
    ]
    splittable = [
        i
        for i, (path, kind) in enumerate(files)
        if (kind == "csv" and not gzipped(path)) or kind == "parquet"
    ]
    span_bytes: int | None = None
    if sizing.workers > 1 or part_bytes is not None:
        share = sum(weights[i] for i in splittable) / (SPANS_PER_WORKER * sizing.workers)
        span_bytes = max(least, math.ceil(share))
        if part_bytes is not None:
            span_bytes = min(span_bytes, part_bytes)
    units: list[_Unit] = []
    finished: dict[int, FileSummary] = {}
    for index, (path, kind) in enumerate(files):
        relative = path.relative_to(input_dir)
        big = index in splittable and span_bytes is not None and weights[index] > span_bytes
        if big and kind == "parquet" and span_bytes is not None:
            groups = _row_group_count(path)
            pieces = min(groups, math.ceil(weights[index] / span_bytes))
            if pieces > 1:
                bounds = [groups * n // pieces for n in range(pieces + 1)]  # contiguous
                units += [
                    _Unit(index, path, relative, kind, int(weights[index] / pieces),
                          groups=tuple(range(bounds[n], bounds[n + 1])), piece=n + 1)
                    for n in range(pieces)
                ]  # fmt: skip
                continue
        elif big and span_bytes is not None:
            header = csv_header(path, relative, schema, output_dir)
            if isinstance(header, FileSummary):
                finished[index] = header
                continue
            cut = spans(path, sizes[index], span_bytes)
            if len(cut) > 1:
                units += [
                    _Unit(index, path, relative, kind, s.end - s.start, s, tuple(header))
                    for s in cut
                ]
                continue
        units.append(_Unit(index, path, relative, kind, sizes[index]))
    return units, finished, part_bytes


def run(
    input_dir: Path,
    output_dir: Path,
    schema: Schema,
    block_size: int = DEFAULT_BLOCK_SIZE,
    drift: quality.BatchDrift | None = None,
    gate: Gate | None = None,
    baseline_note: str = "no baseline: the model version has none",
    forced_format: str = "auto",
    sizing: Sizing | None = None,
) -> dict:
    """Process every input file under ``input_dir`` (``input_format``: by its name, unless
    ``forced_format`` names one format for all); return the summary document (with the
    quality report and, given a ``gate``, its verdict: ``passed``, ``warned`` or ``failed``).

    With ``sizing``, files and spans of large files are read by several processes and the
    inference output is cut into parts; the rows, their order within each file, the
    rejections and every count are the same as read by one."""
    if not input_dir.is_dir():
        raise UsageError(f"input directory {input_dir} does not exist")
    sizing = sizing or Sizing()
    found = sorted(p for p in input_dir.rglob("*") if p.is_file())
    files = [(p, kind) for p in found if (kind := input_format(p, forced_format)) is not None]
    ignored = [
        p.relative_to(input_dir).as_posix() for p in found if input_format(p, forced_format) is None
    ]
    units, finished, part_bytes = _plan(files, input_dir, schema, output_dir, sizing)
    job = _Job(schema, output_dir, block_size, drift.fresh() if drift else None, part_bytes)
    # starting workers costs about a second: less input than a part is read here
    worthwhile = sum(unit.size for unit in units) >= sizing.min_part_bytes
    workers = max(1, min(sizing.workers, len(units))) if worthwhile else 1
    done = _execute(job, units, workers)
    results: list[FileSummary] = []
    for index in range(len(files)):
        if index in finished:
            results.append(finished[index])
            continue
        mine = [(u, d) for u, d in zip(units, done, strict=True) if u.index == index]
        (unit, first), *_ = mine
        if unit.split:
            results.append(_merge_spans(job, unit, [d for _, d in mine], drift))
            continue
        assert first.summary is not None
        if drift is not None and first.drift is not None:
            drift.merge(first.drift)
        results.append(first.summary)
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
    inference = output_dir / "inference"
    peaks = {d.process: d.peak_mb for d in done} | {os.getpid(): peak_memory_mb()}
    document = {
        "host": current_host(),
        "schema_columns": schema.columns,
        "parallelism": {
            "workers": workers,
            "units": len(units),
            # each process's peak, summed: an upper bound of what the job held at once
            "peak_memory_mb": round(sum(peaks.values()), 1),
            "part_bytes": part_bytes,
            "inference_parts": sum(1 for p in inference.rglob("*") if p.is_file())
            if inference.is_dir()
            else 0,
        },
        "input_format": forced_format,
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
_count = _checked(int, lambda v: v >= 0, "a whole number, 0 for automatic")
_positive = _checked(int, lambda v: v >= 1, "a whole number of at least 1")
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
        "--input-format",
        choices=INPUT_FORMATS,
        default="auto",
        help="how to read every input file; auto (default): by its name, .csv, .parquet, "
        ".jsonl or .ndjson (.csv and JSON Lines also .gz), other files ignored",
    )
    parser.add_argument(
        "--workers",
        type=_count,
        default=0,
        help="processes reading files and spans of large CSV files side by side (default 0: "
        "one per vCPU, as many as --max-memory-mb allows)",
    )
    parser.add_argument(
        "--max-memory-mb",
        type=_count,
        default=0,
        help=f"memory the workers may hold together, about {WORKER_MEMORY_MB} MB each at the "
        "default block size (default 0: 3/4 of the instance's memory)",
    )
    parser.add_argument(
        "--transform-instances",
        type=_positive,
        default=1,
        help="the Transform's instance count: the inference output is cut into parts so "
        "that every instance and every request slot gets some (default 1)",
    )
    parser.add_argument(
        "--transform-concurrency",
        type=_positive,
        default=1,
        help="requests each Transform instance serves at once (MaxConcurrentTransforms)",
    )
    parser.add_argument(
        "--min-part-mb",
        type=_count,
        default=MIN_PART_BYTES >> 20,
        help="the smallest inference part and span of a file worth a worker; less input "
        f"than this is read by one process (default {MIN_PART_BYTES >> 20})",
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
    sizing, sized = sizing_for(
        args.workers, args.max_memory_mb, args.transform_instances,
        args.transform_concurrency, args.min_part_mb,
    )  # fmt: skip
    print(f"preprocess: {sized}", flush=True)
    try:
        schema = Schema.load(args.schema)
        drift, note = load_baseline(args.baseline, schema)
        document = run(
            args.input_dir, args.output_dir, schema, args.block_size, drift, gate, note,
            args.input_format, sizing,
        )  # fmt: skip
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
