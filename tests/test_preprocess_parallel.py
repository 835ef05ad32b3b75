"""preprocess.py with several workers and its output cut into parts: the same rows, counts,
rejections and drift as one process reading each file whole."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import random
import re
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from local_mode import twin
from pipelines.batch_inference import preprocess, quality

SCRIPT = Path(preprocess.__file__)
SCHEMA_DOCUMENT = {
    "id_column": "id",
    "features": [
        {"name": "age", "type": "int"},
        {"name": "income", "type": "float"},
        {"name": "segment", "type": "string", "nullable": True},
    ],
}
SCHEMA = preprocess.Schema.from_dict(SCHEMA_DOCUMENT)
BASELINE = quality.compute_baseline(
    {
        "age": [20 + i % 50 for i in range(500)],
        "income": [1000.0 + 7 * i for i in range(500)],
        "segment": ["a", "b", "c", "d"] * 125,
    },
    categorical=["segment"],
)


def rows_text(count: int, newline: str = "\n", bad_every: int = 97) -> str:
    """A CSV file's text: mostly valid rows, with rows of too few or too many fields, values
    of the wrong type, blank lines and a byte-order mark, spread over the whole file."""
    lines = ["\ufeffid,age,income,segment,ignored"]
    for i in range(count):
        age, income, segment = str(20 + i % 60), f"{1000 + i * 3.25:.2f}", "abcd"[i % 4]
        if i % bad_every == 5:
            lines.append(f"r{i},{age},{income}")  # too few fields
        elif i % bad_every == 11:
            lines.append(f"r{i},{age},{income},{segment},x,extra")  # too many
        elif i % bad_every == 17:
            lines.append(f"r{i},old,{income},{segment},x")  # not an int
        elif i % bad_every == 23:
            lines.append(f"r{i},{age},1e999,{segment},x")  # not a finite number
        elif i % bad_every == 29:
            lines.append("")
        else:
            lines.append(f"r{i},{age},{income},{'' if i % 13 == 0 else segment},x")
    return newline.join(lines) + newline


def run(
    input_dir: Path, output_dir: Path, sizing: preprocess.Sizing, baseline: bool = True
) -> dict:
    drift = quality.BatchDrift(BASELINE, ["age", "income", "segment"]) if baseline else None
    return preprocess.run(
        input_dir, output_dir, SCHEMA, preprocess.MIN_BLOCK_SIZE, drift, sizing=sizing
    )


def inference_rows(output_dir: Path, name: str) -> bytes:
    """A file's valid rows: its one file, or its parts in order."""
    folder = output_dir / "inference"
    single = folder / name
    parts = sorted(folder.glob(f"{name}.part-*"))
    assert not (single.exists() and parts), "a file is written whole or in parts, never both"
    return single.read_bytes() if single.exists() else b"".join(p.read_bytes() for p in parts)


def rejected_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def without_parallelism(document: dict) -> dict:
    return {key: value for key, value in document.items() if key != "parallelism"}


SPLIT = preprocess.Sizing(workers=2, parts=1, min_part_bytes=0)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_large_csv_file_read_in_spans_by_two_workers_gives_what_one_reader_gives(
    tmp_path: Path, newline: str
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.csv").write_text(rows_text(4000, newline), encoding="utf-8")
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    split = run(tmp_path / "in", tmp_path / "split", SPLIT)

    assert split["parallelism"]["workers"] == 2
    assert split["parallelism"]["units"] == 4  # two spans per worker
    assert split["parallelism"]["inference_parts"] == 4
    assert sorted(p.name for p in (tmp_path / "split" / "inference").iterdir()) == [
        f"day.csv.part-0000{n}" for n in range(1, 5)
    ]
    assert inference_rows(tmp_path / "split", "day.csv") == inference_rows(
        tmp_path / "whole", "day.csv"
    )
    assert without_parallelism(split) == without_parallelism(whole)  # counts and drift
    assert split["quality"]["drift"]["features"]["income"]["psi"] is not None
    # the same rejections with the same line numbers; one header, the span pieces joined
    whole_rejected = rejected_rows(tmp_path / "whole" / "rejected" / "day.csv")
    split_rejected = rejected_rows(tmp_path / "split" / "rejected" / "day.csv")
    assert split_rejected[0] == whole_rejected[0] == ["id", "reason", "record"]
    assert sorted(split_rejected) == sorted(whole_rejected)
    assert [p.name for p in (tmp_path / "split" / "rejected").iterdir()] == ["day.csv"]
    # a malformed row near the end names its line in the whole file (blank lines aside)
    last = next(r for r in reversed(split_rejected) if r[1].startswith("line "))
    number = int(re.match(r"line (\d+):", last[1]).group(1))  # type: ignore[union-attr]
    text_lines = [t for t in rows_text(4000, newline).split(newline) if t]
    assert text_lines[number - 1] == last[2]


def test_line_numbers_after_the_first_span_are_the_files_whatever_its_line_breaks(
    tmp_path: Path,
) -> None:
    """\\n, \\r\\n and a lone \\r mixed, empty and blank lines, rows of the wrong length
    everywhere: a span's lines are counted as pyarrow numbers them (its rows read), so
    every rejected row names the line it has in the whole file."""
    rng = random.Random(7)
    lines = ["id,age,income,segment"]
    for i in range(6000):
        lines.append(
            rng.choice([f"r{i},30,1.5,a", f"r{i},30,1.5,a", f"r{i},30", " ", "", f"r{i},x,1,b"])
        )
    text = "".join(line + rng.choice(["\n", "\r\n", "\n", "\r"]) for line in lines)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.csv").write_text(text + "\n", encoding="utf-8")
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing(), baseline=False)
    split = run(tmp_path / "in", tmp_path / "split", SPLIT, baseline=False)
    assert split["parallelism"]["units"] == 4
    assert without_parallelism(split) == without_parallelism(whole)
    split_rejected = rejected_rows(tmp_path / "split" / "rejected" / "day.csv")
    assert sorted(split_rejected) == sorted(
        rejected_rows(tmp_path / "whole" / "rejected" / "day.csv")
    )
    assert sum(1 for row in split_rejected if row[1].startswith("line ")) > 1000


def test_a_quote_anywhere_makes_the_file_read_whole(tmp_path: Path) -> None:
    """A quoted field may hold a line break that a span would cut: such a file is read by
    one worker from its start, its output the same as ever."""
    text = rows_text(3000).replace("r2990,", '"r2990",', 1).replace("r2995,", '"r29\n95",', 1)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.csv").write_text(text, encoding="utf-8")
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    split = run(tmp_path / "in", tmp_path / "split", SPLIT)
    assert inference_rows(tmp_path / "split", "day.csv") == inference_rows(
        tmp_path / "whole", "day.csv"
    )
    assert sorted(rejected_rows(tmp_path / "split" / "rejected" / "day.csv")) == sorted(
        rejected_rows(tmp_path / "whole" / "rejected" / "day.csv")
    )
    assert without_parallelism(split) == without_parallelism(whole)
    assert [p.name for p in (tmp_path / "split" / "inference").iterdir()] == ["day.csv"]


def test_a_bad_byte_in_a_late_span_quarantines_the_whole_file(tmp_path: Path) -> None:
    data = rows_text(3000).encode()
    data = data[: len(data) * 3 // 4] + b"\xff\xfe" + data[len(data) * 3 // 4 :]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.csv").write_bytes(data)
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    split = run(tmp_path / "in", tmp_path / "split", SPLIT)
    assert without_parallelism(split) == without_parallelism(whole)
    assert split["files"][0]["quarantined_to"] == "rejected/whole-files/day.csv"
    assert (tmp_path / "split" / "rejected" / "whole-files" / "day.csv").read_bytes() == data
    # nothing of the spans that were read before the bad one is left
    assert not (tmp_path / "split" / "inference").exists() or not any(
        (tmp_path / "split" / "inference").iterdir()
    )
    assert [p.name for p in (tmp_path / "split" / "rejected").iterdir()] == ["whole-files"]


def test_a_large_parquet_file_is_read_by_its_row_groups_on_two_workers(tmp_path: Path) -> None:
    rows = [
        {
            "id": f"r{i}",
            "age": 20 + i % 60,
            "income": float("nan") if i % 331 == 7 else 1000 + i * 3.25,
            "segment": None if i % 13 == 0 else "abcd"[i % 4],
        }
        for i in range(8000)
    ]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "day.parquet", row_group_size=1000)
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    split = run(tmp_path / "in", tmp_path / "split", SPLIT)
    assert split["parallelism"]["units"] == 4  # eight row groups, two pieces per worker
    assert without_parallelism(split) == without_parallelism(whole)
    assert split["rows_rejected"] == 25  # the NaN incomes
    name = "day.parquet.csv"
    assert inference_rows(tmp_path / "split", name) == inference_rows(tmp_path / "whole", name)
    assert sorted(p.name for p in (tmp_path / "split" / "inference").iterdir()) == [
        f"{name}.part-0000{n}" for n in range(1, 5)
    ]
    assert (tmp_path / "split" / "rejected" / name).read_bytes() == (
        tmp_path / "whole" / "rejected" / name
    ).read_bytes()  # no read-ahead thread: the same order
    # a file its pieces cannot read (no id column) is quarantined whole, as read by one
    pq.write_table(
        pa.Table.from_pylist([{"age": r["age"]} for r in rows]),
        tmp_path / "in" / "day.parquet",
        row_group_size=1000,
    )
    whole = run(tmp_path / "in", tmp_path / "whole-bad", preprocess.Sizing())
    split = run(tmp_path / "in", tmp_path / "split-bad", SPLIT)
    assert without_parallelism(split) == without_parallelism(whole)
    assert split["files"][0]["quarantined_to"] == "rejected/whole-files/day.parquet"
    assert split["rows_rejected"] == 8000


def write_formats(folder: Path, count: int) -> None:
    """The same kind of rows as many files of every format, some of them bad."""
    rows = [
        {"id": f"r{i}", "age": 20 + i % 60, "income": 1000 + i * 3.25, "segment": "abcd"[i % 4]}
        for i in range(count)
    ]
    folder.mkdir(parents=True)
    for n in range(3):
        (folder / f"plain-{n}.csv").write_text(rows_text(count // 3, bad_every=89 + n))
    with gzip.open(folder / "packed.csv.gz", "wt", encoding="utf-8") as handle:
        handle.write(rows_text(count // 2))
    lines = [json.dumps(r) for r in rows] + ['{"id": "bad", "age": "x"}']
    (folder / "sub" / "lines.jsonl").parent.mkdir()
    (folder / "sub" / "lines.jsonl").write_text("\n".join(lines) + "\n")
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, folder / "columns.parquet", row_group_size=500)
    (folder / "broken.parquet").write_bytes(b"PAR1 not really")
    (folder / "empty.csv").write_text("")


def test_many_files_of_every_format_by_two_workers_give_the_same_files(tmp_path: Path) -> None:
    write_formats(tmp_path / "in", 3000)
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    parallel = run(tmp_path / "in", tmp_path / "parallel", preprocess.Sizing(2, 1, 1 << 30))
    many = run(tmp_path / "in", tmp_path / "many", preprocess.Sizing(2, 1, 0))
    assert whole["parallelism"]["workers"] == 1
    assert parallel["parallelism"]["workers"] == 1  # less input than a part: read here
    assert many["parallelism"]["workers"] == 2
    for document in (parallel, many):
        assert without_parallelism(document) == without_parallelism(whole)
    # each file's valid rows byte for byte (the plain CSV ones read in spans and the
    # Parquet one by its row groups, as their parts joined); its rejections as rows (a
    # block's malformed lines reach the rejected file from pyarrow's read-ahead thread, so
    # they may come before the previous block's bad values, in one reader too)
    for name in ("packed.csv.gz.csv", "sub/lines.jsonl.csv", "columns.parquet.csv"):
        expected = (tmp_path / "whole" / "inference" / name).read_bytes()
        assert inference_rows(tmp_path / "many", name) == expected
        if (tmp_path / "whole" / "rejected" / name).exists():
            assert sorted(rejected_rows(tmp_path / "many" / "rejected" / name)) == sorted(
                rejected_rows(tmp_path / "whole" / "rejected" / name)
            )
    for n in range(3):
        name = f"plain-{n}.csv"
        assert inference_rows(tmp_path / "many", name) == inference_rows(tmp_path / "whole", name)
    assert (tmp_path / "many" / "rejected" / "whole-files" / "broken.parquet").exists()


def test_output_is_cut_into_parts_for_the_transform_fleet(tmp_path: Path) -> None:
    """parts=8: every format's rows roll over into parts of about an eighth of the output
    (estimated from the input); a file smaller than a part keeps its one name."""
    write_formats(tmp_path / "in", 6000)
    whole = run(tmp_path / "in", tmp_path / "whole", preprocess.Sizing())
    cut = run(tmp_path / "in", tmp_path / "cut", preprocess.Sizing(1, 8, 0))
    assert without_parallelism(cut) == without_parallelism(whole)
    part_bytes = cut["parallelism"]["part_bytes"]
    assert part_bytes > 0
    inference = tmp_path / "cut" / "inference"
    names = sorted(p.relative_to(inference).as_posix() for p in inference.rglob("*"))
    assert cut["parallelism"]["inference_parts"] == len([n for n in names if "." in n])
    for name in ("packed.csv.gz.csv", "sub/lines.jsonl.csv", "columns.parquet.csv"):
        expected = (tmp_path / "whole" / "inference" / name).read_bytes()
        assert inference_rows(tmp_path / "cut", name) == expected
        parts = sorted(inference.glob(f"{name}.part-*"))
        assert (name in names) == (not parts)
        if name != "columns.parquet.csv":  # (read by row groups: a part each)
            # a part is closed by the first write that reaches the part size
            assert all(p.stat().st_size >= part_bytes for p in parts[:-1])
    assert "sub/lines.jsonl.csv.part-00002" in names  # the largest file rolled over
    for n in range(3):
        name = f"plain-{n}.csv"
        assert inference_rows(tmp_path / "cut", name) == inference_rows(tmp_path / "whole", name)


def test_the_sizing_follows_the_fleet_the_vcpus_and_the_memory_setting(monkeypatch) -> None:
    monkeypatch.setattr(preprocess, "available_cpus", lambda: 8)
    monkeypatch.setenv("SM_HOSTS", '["algo-1", "algo-2"]')
    sizing, note = preprocess.sizing_for(0, 4 * preprocess.WORKER_MEMORY_MB, 3, 4)
    assert (sizing.workers, sizing.parts) == (4, 6)  # 3 x 4 slots shared by 2 hosts
    assert note == (
        f"4 worker(s) of 8 ({4 * preprocess.WORKER_MEMORY_MB} MB of memory holds 4 at "
        f"{preprocess.WORKER_MEMORY_MB} MB), output for 6 Transform request slot(s)"
    )
    sizing, note = preprocess.sizing_for(2, 100 * preprocess.WORKER_MEMORY_MB, 1, 1, 5)
    assert (sizing.workers, sizing.parts, sizing.min_part_bytes) == (2, 1, 5 << 20)
    # less memory than one worker needs still runs, with one
    assert preprocess.sizing_for(0, 1, 1, 1)[0].workers == 1


@pytest.mark.parametrize(
    "argument, message",
    [
        (["--workers", "-1"], "argument --workers: must be a whole number, 0 for automatic"),
        (["--transform-instances", "0"], "must be a whole number of at least 1, got 0"),
        (["--max-memory-mb", "lots"], "argument --max-memory-mb: 'lots' is not a number"),
    ],
)
def test_a_bad_sizing_argument_is_one_line_and_exit_2(
    tmp_path: Path, capsys, argument: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        preprocess.main(["--input-dir", str(tmp_path), *argument])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error


def test_the_script_uses_its_workers_in_the_processing_images_runtime(tmp_path: Path) -> None:
    """As the Processing job runs it: the image's Python, the script by its path (workers
    start from a fork server that imports it as their main module)."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "day.csv").write_text(rows_text(3000), encoding="utf-8")
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA_DOCUMENT))
    lib = tmp_path / "code" / "lib"
    lib.mkdir(parents=True)
    (lib / "quality.py").write_bytes((SCRIPT.parent / "quality.py").read_bytes())
    script = tmp_path / "code" / "code" / "preprocess.py"
    script.parent.mkdir()
    script.write_bytes(SCRIPT.read_bytes())
    arguments = ["--input-dir", str(tmp_path / "in"), "--schema", str(tmp_path / "schema.json")]
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"])):
        done = subprocess.run(
            [str(twin.python()), str(script), *arguments, "--output-dir", str(tmp_path / name),
             "--min-part-mb", "0", "--transform-instances", "2", *extra],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "2 worker(s), output for 2 Transform request slot(s)" in done.stdout
    one = json.loads((tmp_path / "one" / "summary" / "algo-1.json").read_text())
    two = json.loads((tmp_path / "two" / "summary" / "algo-1.json").read_text())
    assert without_parallelism(one) == without_parallelism(two)
    assert (one["parallelism"]["workers"], two["parallelism"]["workers"]) == (1, 2)
    assert two["parallelism"]["peak_memory_mb"] > one["parallelism"]["peak_memory_mb"] > 0
    assert inference_rows(tmp_path / "two", "day.csv") == inference_rows(
        tmp_path / "one", "day.csv"
    )


SHORT = "09+-.eE naifx"


def test_pyarrow_casts_no_string_to_a_finite_float_that_the_number_pattern_refuses() -> None:
    """The float fast path (the cast alone decides a column that casts cleanly) is sound
    only if this holds: every string of up to four of these characters, plus the usual
    suspects."""
    candidates = ["".join(t) for n in range(1, 5) for t in itertools.product(SHORT, repeat=n)]
    candidates += ["nan", "NaN", "inf", "-Infinity", "1e400", "0x10", "1_0", "\u0661", " 1"]
    accepted = []
    for value in candidates:
        try:
            number = pc.cast(pa.array([value]), pa.float64())[0].as_py()
        except pa.ArrowInvalid:
            continue
        if number is not None and math.isfinite(number):
            accepted.append(value)
    pattern = re.compile(preprocess._NUMBER)
    assert len(accepted) > 100  # the test sees numbers at all
    assert [value for value in accepted if not pattern.match(value)] == []
