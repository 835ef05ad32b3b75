"""Batch Transform's record handling: split lines, apply JSONPath filters, join input and output.

SageMaker applies ``InputFilter``/``OutputFilter`` to each record and, with
``JoinSource=Input``, appends the model's output to the original record. Doing that one
Python object per record costs more than the model itself on a million rows, so CSV batches
are handled as one byte buffer with numpy (field boundaries from comma positions, output by a
vectorised gather). Records with quotes take an exact per-record path through ``csv``; JSON
records go through ``json``.

Supported filters: ``$`` (everything), ``$[a:b]`` (a slice, negative bounds allowed),
``$[i]`` and ``$[i,j,...]`` (fields by position, negative allowed).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import numpy as np

COMMA, NEWLINE, QUOTE = ord(","), ord("\n"), ord('"')


class RecordError(Exception):
    """A record the filter or join cannot handle; ``line`` is its 0-based index in the batch."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Selector:
    """A parsed JSONPath filter: ``indices`` or ``start``/``stop`` (slice); neither = ``$``."""

    text: str
    start: int | None = None
    stop: int | None = None
    indices: tuple[int, ...] | None = None
    is_slice: bool = False

    @property
    def selects_all(self) -> bool:
        return not self.is_slice and self.indices is None


def parse_selector(text: str | None) -> Selector:
    """Parse ``$``, ``$[a:b]``, ``$[i]`` or ``$[i,j,...]``; anything else is an error."""
    if text is None or text.strip() == "$":
        return Selector("$")
    compact = text.replace(" ", "")
    match = re.fullmatch(r"\$\[(-?\d*):(-?\d*)\]", compact)
    if match:
        start, stop = (int(v) if v else None for v in match.groups())
        return Selector(text, start=start, stop=stop, is_slice=True)
    match = re.fullmatch(r"\$\[(-?\d+(?:,-?\d+)*)\]", compact)
    if match:
        return Selector(text, indices=tuple(int(v) for v in match.group(1).split(",")))
    raise RecordError(
        f"JSONPath {text!r} is not supported in local mode; use $, $[a:b] or $[i,j,...]"
    )


@dataclass
class Lines:
    """Records as one buffer: record ``i`` is ``buffer[starts[i]:ends[i]]`` (no newline)."""

    buffer: np.ndarray
    starts: np.ndarray
    ends: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Lines:
        """Split on newlines; a trailing newline ends the last record, CRLF is accepted and
        blank lines carry no record."""
        buffer = np.frombuffer(data, dtype=np.uint8)
        breaks = np.flatnonzero(buffer == NEWLINE).astype(np.int64)
        ends = breaks if data.endswith(b"\n") or not data else np.append(breaks, len(data))
        starts = np.concatenate(([0], breaks + 1))[: len(ends)].astype(np.int64)
        carriage = (ends > starts) & (buffer[np.maximum(ends - 1, 0)] == ord("\r"))
        ends = ends - carriage.astype(np.int64)
        keep = ends > starts
        return cls(buffer, starts[keep], ends[keep])

    def record(self, index: int) -> bytes:
        return self.buffer[self.starts[index] : self.ends[index]].tobytes()

    def records(self) -> list[bytes]:
        return [self.record(i) for i in range(len(self))]

    def to_bytes(self) -> bytes:
        """Every record followed by a newline."""
        if not len(self):
            return b""
        lengths = self.ends - self.starts
        source = np.concatenate((self.buffer, np.array([NEWLINE], dtype=np.uint8)))
        newline = np.full(len(self), len(self.buffer), dtype=np.int64)
        starts = np.column_stack((self.starts, newline)).ravel()
        sizes = np.column_stack((lengths, np.ones(len(self), dtype=np.int64))).ravel()
        return _gather(source, starts, sizes).tobytes()

    def slice(self, first: int, last: int) -> Lines:
        return Lines(self.buffer, self.starts[first:last], self.ends[first:last])

    def has_quotes(self) -> bool:
        if not len(self):
            return False
        region = self.buffer[self.starts[0] : self.ends[-1]]
        return bool((region == QUOTE).any())


def _gather(source: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenate ``source[starts[k] : starts[k] + sizes[k]]`` for every k, vectorised."""
    total = int(sizes.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint8)
    offsets = np.cumsum(sizes) - sizes
    index = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, sizes)
    return source[index]


def _from_pieces(source: np.ndarray, starts: np.ndarray, sizes: np.ndarray, per_line: int) -> Lines:
    """Build ``Lines`` from ``per_line`` pieces per record (``starts``/``sizes`` are 2-D)."""
    count = starts.shape[0]
    newline = len(source)
    source = np.concatenate((source, np.array([NEWLINE], dtype=np.uint8)))
    all_starts = np.column_stack((starts, np.full(count, newline))).ravel()
    all_sizes = np.column_stack((sizes, np.ones(count, dtype=np.int64))).ravel()
    buffer = _gather(source, all_starts, all_sizes)
    lengths = sizes.sum(axis=1)
    line_starts = np.cumsum(lengths + 1) - (lengths + 1)
    return Lines(buffer, line_starts, line_starts + lengths)


def _field_layout(lines: Lines) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Comma positions, each record's first comma's index among them, and field counts."""
    commas = np.flatnonzero(lines.buffer == COMMA)
    first = np.searchsorted(commas, lines.starts)
    after = np.searchsorted(commas, lines.ends)
    return commas, first, after - first + 1


def _field_range(
    lines: Lines, commas: np.ndarray, first: np.ndarray, fields: np.ndarray, k: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of field ``k[i]`` of every record ``i``."""
    safe = commas if len(commas) else np.zeros(1, dtype=np.int64)
    before = np.clip(first + k - 1, 0, len(safe) - 1)
    at = np.clip(first + k, 0, len(safe) - 1)
    start = np.where(k == 0, lines.starts, safe[before] + 1)
    end = np.where(k == fields - 1, lines.ends, safe[at])
    return start, end


def select_csv(lines: Lines, selector: Selector) -> Lines:
    """Apply ``selector`` to CSV records, keeping each selected field's bytes as they are."""
    if selector.selects_all or not len(lines):
        return lines
    if lines.has_quotes():
        return _select_csv_slow(lines, selector)
    commas, first, fields = _field_layout(lines)
    if selector.is_slice:
        start = _bound(selector.start, fields, default=np.zeros_like(fields))
        stop = _bound(selector.stop, fields, default=fields)
        empty = stop <= start
        begin, _ = _field_range(lines, commas, first, fields, np.where(empty, 0, start))
        _, end = _field_range(lines, commas, first, fields, np.where(empty, 0, stop - 1))
        sizes = np.where(empty, 0, end - begin)
        return _from_pieces(lines.buffer, begin[:, None], sizes[:, None], 1)
    wanted = np.array(selector.indices, dtype=np.int64)
    positions = np.where(wanted[None, :] < 0, fields[:, None] + wanted[None, :], wanted[None, :])
    bad = (positions < 0) | (positions >= fields[:, None])
    if bad.any():
        line = int(np.flatnonzero(bad.any(axis=1))[0])
        field = selector.indices[int(np.flatnonzero(bad[line])[0])]
        raise RecordError(
            f"filter {selector.text} needs field {field} but the record has {int(fields[line])}",
            line,
        )
    comma_at = len(lines.buffer)
    source = np.concatenate((lines.buffer, np.array([COMMA], dtype=np.uint8)))
    piece_starts, piece_sizes = [], []
    for column in range(len(wanted)):
        begin, end = _field_range(lines, commas, first, fields, positions[:, column])
        if column:
            piece_starts.append(np.full(len(lines), comma_at))
            piece_sizes.append(np.ones(len(lines), dtype=np.int64))
        piece_starts.append(begin)
        piece_sizes.append(end - begin)
    return _from_pieces(
        source, np.column_stack(piece_starts), np.column_stack(piece_sizes), len(piece_starts)
    )


def _bound(value: int | None, fields: np.ndarray, default: np.ndarray) -> np.ndarray:
    """Python slice-bound semantics, per record."""
    if value is None:
        return default
    bound = np.full_like(fields, value) if value >= 0 else fields + value
    return np.clip(bound, 0, fields)


def _select_csv_slow(lines: Lines, selector: Selector) -> Lines:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for index, record in enumerate(lines.records()):
        fields = next(csv.reader([record.decode("utf-8")]), [])
        writer.writerow(_select_list(fields, selector, index))
    return Lines.from_bytes(out.getvalue().encode("utf-8"))


def _select_list(values: list, selector: Selector, index: int) -> list:
    if selector.selects_all:
        return values
    if selector.is_slice:
        return values[selector.start : selector.stop]
    try:
        return [values[i] for i in selector.indices or ()]
    except IndexError:
        raise RecordError(
            f"filter {selector.text} needs more fields than the record's {len(values)}", index
        ) from None


def join_csv(inputs: Lines, outputs: Lines) -> Lines:
    """``input,output`` per record (``JoinSource=Input`` for CSV)."""
    if len(inputs) != len(outputs):
        raise RecordError(
            f"the model returned {len(outputs)} record(s) for {len(inputs)}: cannot join them"
        )
    if not len(inputs):
        return inputs
    offset = len(inputs.buffer)
    comma_at = offset + len(outputs.buffer)
    source = np.concatenate((inputs.buffer, outputs.buffer, np.array([COMMA], dtype=np.uint8)))
    count = len(inputs)
    starts = np.column_stack((inputs.starts, np.full(count, comma_at), outputs.starts + offset))
    sizes = np.column_stack(
        (inputs.ends - inputs.starts, np.ones(count, dtype=np.int64), outputs.ends - outputs.starts)
    )
    return _from_pieces(source, starts, sizes, 3)


def select_json(lines: Lines, selector: Selector) -> Lines:
    """Apply ``selector`` to JSON records (arrays are indexed; ``$`` keeps any value)."""
    if selector.selects_all:
        return lines
    out = []
    for index, record in enumerate(lines.records()):
        value = _json_record(record, index)
        if not isinstance(value, list):
            raise RecordError(f"filter {selector.text} needs a JSON array record", index)
        out.append(json.dumps(_select_list(value, selector, index)))
    return Lines.from_bytes(("\n".join(out) + "\n").encode() if out else b"")


def join_json(inputs: Lines, outputs: Lines) -> Lines:
    """JSON join: arrays get the output appended, objects get a ``SageMakerOutput`` key."""
    if len(inputs) != len(outputs):
        raise RecordError(
            f"the model returned {len(outputs)} record(s) for {len(inputs)}: cannot join them"
        )
    joined = []
    for index, (record, output) in enumerate(zip(inputs.records(), outputs.records(), strict=True)):
        value, result = _json_record(record, index), _json_record(output, index)
        if isinstance(value, list):
            value = [*value, *(result if isinstance(result, list) else [result])]
        elif isinstance(value, dict):
            value = {**value, "SageMakerOutput": result}
        else:
            raise RecordError("JoinSource=Input needs JSON object or array records", index)
        joined.append(json.dumps(value))
    return Lines.from_bytes(("\n".join(joined) + "\n").encode() if joined else b"")


def _json_record(record: bytes, index: int) -> object:
    try:
        return json.loads(record)
    except json.JSONDecodeError as error:
        raise RecordError(f"record is not JSON: {error.msg}", index) from None
