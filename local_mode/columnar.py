"""Batch Transform's common CSV case in Arrow arrays instead of one object per record.

A pipeline's Transform usually reads plain CSV with ``SplitType=Line`` and an
``InputFilter`` that drops the leading columns (``$[1:]``: the id). The record path
(``records``) makes several Python objects per record to split, filter and re-join them.
Here a batch's lines become one Arrow array without a copy (numpy finds the newlines),
Arrow splits off the dropped fields in C++, and the kept fields of consecutive records, each
still followed by its newline, lie back to back in one buffer: a request's payload is one
slice of it. Batches that are not the plain case (a quote, a carriage return, a blank line,
a record with too few fields) get ``None`` and go through the record path, which handles and
reports them exactly; on the plain case both give the same bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from local_mode.records import Lines, Selector


def drops_leading_fields(selector: Selector) -> int | None:
    """``k`` for an ``InputFilter`` of the form ``$[k:]`` (k >= 1), else ``None``."""
    if selector.is_slice and selector.stop is None and selector.start and selector.start > 0:
        return selector.start
    return None


class LineTable:
    """One batch of unquoted CSV lines as Arrow arrays: the lines, each one's first field, and
    its fields after the first ``drop`` (the model's part), newline included."""

    quoted = False  # a batch with a quote never becomes a table

    def __init__(self, lines: pa.Array, first_fields: pa.Array, kept: pa.Array):
        self._lines, self._first_fields, self._kept = lines, first_fields, kept
        offsets = np.frombuffer(kept.buffers()[1], dtype=np.int64)
        self._kept_offsets = offsets[kept.offset : kept.offset + len(kept) + 1]
        self._kept_data = kept.buffers()[2]

    @classmethod
    def of(cls, data: bytes, drop: int) -> LineTable | None:
        """The table of ``data`` (whole lines), or ``None`` when it needs the record path."""
        if not data or b'"' in data or b"\r" in data:
            return None
        if not data.endswith(b"\n"):
            data += b"\n"  # an object's last line without its newline: a record all the same
        ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
        offsets = np.empty(ends.size + 1, dtype=np.int64)
        offsets[0], offsets[1:] = 0, ends + 1
        if np.diff(offsets).min() == 1:
            return None  # a blank line (the record path skips it, as it never reaches a model)
        lines = pa.Array.from_buffers(
            pa.large_binary(), ends.size, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        )
        pool = pa.system_memory_pool()  # returns freed batches: mimalloc kept ~60 MiB more
        parts = pc.split_pattern(lines, ",", max_splits=drop, memory_pool=pool)
        if pc.min(pc.list_value_length(parts, memory_pool=pool)).as_py() <= drop:
            return None  # a record with fewer fields than the filter drops
        return cls(
            lines,
            pc.list_element(parts, 0, memory_pool=pool),
            pc.list_element(parts, drop, memory_pool=pool),
        )

    def __len__(self) -> int:
        return len(self._lines)

    def payload_sizes(self) -> np.ndarray:
        """Bytes each record adds to a request: its kept fields and a newline."""
        return np.diff(self._kept_offsets)

    def payload(self, first: int, last: int) -> bytes:
        """Records ``first`` to ``last - 1`` as a request body, each followed by a newline."""
        start, stop = int(self._kept_offsets[first]), int(self._kept_offsets[last])
        return self._kept_data.slice(start, stop - start).to_pybytes()

    def model_records(self, first: int, last: int) -> Lines:
        """The same records one by one (no newline), to find the one a model refuses."""
        return [record[:-1] for record in self._kept.slice(first, last - first).to_pylist()]

    def first_fields(self, first: int, last: int) -> Lines:
        """Each record's first field (the id the pipeline's output filter keeps)."""
        return self._first_fields.slice(first, last - first).to_pylist()

    def widths(self, first: int, last: int) -> np.ndarray:
        """How many fields each record has (a comma each, plus one: no record is quoted)."""
        lines = self._lines.slice(first, last - first)
        return pc.count_substring(lines, ",").to_numpy(zero_copy_only=False) + 1

    def lines(self, first: int, last: int) -> Lines:
        """Records ``first`` to ``last - 1`` as they were read."""
        return [line[:-1] for line in self._lines.slice(first, last - first).to_pylist()]
