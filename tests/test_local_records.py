"""Local mode: record splitting, JSONPath filters and joins, checked against plain Python."""

from __future__ import annotations

import csv
import io
import random

import pytest

from local_mode import records
from local_mode.records import (
    RecordError,
    join_csv,
    parse_selector,
    select_csv,
    split_lines,
    to_payload,
)


def reference_select(data: bytes, selector: str) -> list[list[str]]:
    """What the filter means, one record at a time with the csv module."""
    parsed = parse_selector(selector)
    rows = [row for row in csv.reader(io.StringIO(data.decode())) if row]
    if parsed.parts is None:
        return rows
    picked = []
    for row in rows:
        fields: list[str] = []
        for part in parsed.parts:
            fields += row[part[0] : part[1]] if isinstance(part, tuple) else [row[part]]
        picked.append(fields)
    return picked


def as_rows(lines: list[bytes]) -> list[list[str]]:
    return [row for row in csv.reader(io.StringIO(to_payload(lines).decode()))]


@pytest.mark.parametrize(
    "selector",
    [
        "$",
        "$[1:]",
        "$[0,-1]",
        "$[-2:]",
        "$[1:3]",
        "$[2]",
        "$[:-1]",
        "$[3,0,1]",
        "$[ 1 : ]",
        "$[0,4:]",
        "$[0,2:4]",
        "$[-1,0:2]",
        "$[1:2,0]",
    ],
)
def test_vectorised_filters_match_per_record_python(selector: str) -> None:
    rng = random.Random(selector)
    rows = [
        [f"id{i}"] + [f"{rng.uniform(-5, 5):.4f}" for _ in range(rng.choice([4, 5, 6]))]
        for i in range(500)
    ]
    data = ("\n".join(",".join(row) for row in rows) + "\n").encode()
    assert as_rows(select_csv(split_lines(data), parse_selector(selector))) == (
        reference_select(data, selector)
    )


def test_quoted_records_take_the_exact_path() -> None:
    data = b'"a,1",x,"say ""hi"""\nplain,y,z\n'
    assert as_rows(select_csv(split_lines(data), parse_selector("$[0,2]"))) == [
        ["a,1", 'say "hi"'],
        ["plain", "z"],
    ]


def test_line_splitting_handles_crlf_blank_lines_and_no_final_newline() -> None:
    lines = split_lines(b"a,1\r\n\nb,2\n\r\nc,3")
    assert lines == [b"a,1", b"b,2", b"c,3"]
    assert to_payload(lines) == b"a,1\nb,2\nc,3\n"
    assert len(split_lines(b"")) == 0


def test_join_then_output_filter_keeps_id_and_prediction() -> None:
    inputs = split_lines(b"id1,1.5,2\nid2,3,4\n")
    outputs = split_lines(b"0.25\n0.75\n")
    joined = join_csv(inputs, outputs)
    assert joined == [b"id1,1.5,2,0.25", b"id2,3,4,0.75"]
    assert select_csv(joined, parse_selector("$[0,-1]")) == [b"id1,0.25", b"id2,0.75"]


def test_join_needs_one_output_per_record() -> None:
    with pytest.raises(RecordError, match="returned 1 record\\(s\\) for 2"):
        join_csv(split_lines(b"a\nb\n"), split_lines(b"x\n"))


def test_missing_field_names_the_record() -> None:
    with pytest.raises(RecordError) as raised:
        select_csv(split_lines(b"a,b,c\nd,e\n"), parse_selector("$[2]"))
    assert raised.value.line == 1
    assert str(raised.value) == "filter $[2] needs more fields than the record's 2"


@pytest.mark.parametrize("text", ["$.features", "$[*]", "$..x", "[1:]", "$[]", "$[0,x]", "$[0,,1]"])
def test_unsupported_jsonpath_is_refused(text: str) -> None:
    with pytest.raises(RecordError, match="not supported in local mode"):
        parse_selector(text)


def test_json_records_filter_and_join() -> None:
    lines = split_lines(b'[1, 2, 3]\n{"a": 1}\n')
    joined = records.join_json(lines, split_lines(b"0.5\n[7]\n"))
    assert joined == [b"[1, 2, 3, 0.5]", b'{"a": 1, "SageMakerOutput": [7]}']
    assert records.select_json(split_lines(b"[1, 2, 3]\n"), parse_selector("$[1:]")) == [b"[2, 3]"]


@pytest.mark.parametrize(
    "selector",
    [
        "$",
        "$[0,-1]",
        "$[-1]",
        "$[0]",
        "$[1:]",
        "$[-2:]",
        "$[:2]",
        "$[2,0]",
        "$[0,3,-1]",
        "$[0,4:]",
        "$[0,5:]",
        "$[0,1:3]",
    ],
)
def test_fused_join_and_output_filter_match_the_materialised_join(selector: str) -> None:
    rng = random.Random(selector)
    inputs = b"".join(
        (
            ",".join([f"id{i}"] + [str(rng.randint(0, 99)) for _ in range(rng.choice([3, 4]))])
            + "\n"
        ).encode()
        for i in range(300)
    )
    outputs = b"".join(
        (",".join(str(rng.random()) for _ in range(rng.choice([1, 2, 3]))) + "\n").encode()
        for _ in range(300)
    )
    parsed = parse_selector(selector)
    fused = records.join_select_csv(split_lines(inputs), split_lines(outputs), parsed)
    reference = select_csv(join_csv(split_lines(inputs), split_lines(outputs)), parsed)
    assert fused == reference


def test_selection_keeps_crlf_records_apart_and_empty_fields() -> None:
    lines = split_lines(b"a,,1\r\nb,2,\r\n")
    assert select_csv(lines, parse_selector("$[0,2]")) == [b"a,1", b"b,"]
    assert select_csv(lines, parse_selector("$[1:]")) == [b",1", b"2,"]
    assert select_csv(lines, parse_selector("$[5:]")) == [b"", b""]


def test_fused_join_takes_the_exact_path_when_an_output_is_quoted() -> None:
    inputs = split_lines(b"id1,1,2\nid2,3,4\n")
    outputs = split_lines(b'0.1,"benign, likely"\n0.9,malignant\n')
    parsed = parse_selector("$[0,-1]")
    fused = records.join_select_csv(inputs, outputs, parsed)
    assert fused == select_csv(join_csv(inputs, outputs), parsed)
    assert fused == [b'id1,"benign, likely"', b"id2,malignant"]


def test_the_id_and_every_output_column_of_a_multi_column_answer() -> None:
    """``$[0,k:]`` with k the input's width (the pipeline's filter): the id and the model's
    whole answer, a class label and its probabilities; a quoted answer takes the exact path."""
    inputs = split_lines(b"id1,a,,2.5\nid2,b,x,\n")
    outputs = split_lines(b'high,0.1,0.2,0.7\n"low, sure",0.8,0.1,0.1\n')
    parsed = parse_selector("$[0,4:]")
    assert parsed.first_and_rest == 4
    fused = records.join_select_csv(inputs, outputs, parsed)
    assert fused == select_csv(join_csv(inputs, outputs), parsed)
    assert fused == [b"id1,high,0.1,0.2,0.7", b'id2,"low, sure",0.8,0.1,0.1']
