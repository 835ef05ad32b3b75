"""Date partitions of a stage's input and output, and the marker that says a day was scored.

A run for day D reads ``<input_data_url>/<partition>/`` and writes under
``<output_data_url>/<partition>/`` (the pipeline adds the execution id below that), where
``<partition>`` is the stage's ``partition_format`` (strftime, default ``dt=%Y-%m-%d``)
applied to D. What happened to a day is one JSON marker,
``<output_data_url>/_runs/<partition>.json``:

- ``Executing``: a run was started (its execution ARN); the next look asks SageMaker how it
  ended and rewrites the marker with the outcome;
- ``Succeeded``: scored, with the execution ARN and the rows read / rejected / scored (from
  the run's Preprocess summaries). Not scored again unless forced;
- ``Empty``: the partition held no CSV object with data (missing, empty, or only markers
  such as Spark's ``_SUCCESS``): a success with zero rows, no run started (SageMaker refuses
  a job whose S3 input prefix holds no object). Looked at again next time: data that
  arrives late is scored then;
- ``Failed`` / ``Stopped``: the run's outcome and reason; the next trigger retries.

An object scored on upload (outside the day partitions) has its own marker,
``<OutputDataUrl>/_runs/uploads/<key under the input prefix>.json``, with the upload's
version (its S3 VersionId; its ETag in a bucket without versions): one upload is scored once
however often its event is delivered, and each new upload of the key again.

A run's marker is completed when the run ends (the stage's run-outcome function, on
SageMaker's status change event) or, failing that, at the next look at the day or object.
``decide`` / ``decide_upload`` decide; the CLI (``python -m pipelines.run_pipeline
--stage``), the stage's schedule and its run-on-upload function act on it.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

from common.s3_locations import parse_s3_uri, sse_arguments
from stage_runtime.executions import ENDED, RUNNING

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_FORMAT = "dt=%Y-%m-%d"
MARKER_FORMAT = "sagemaker-batch-mlops/partition-run/1"
MARKERS = "_runs"
UPLOADS = "uploads"  # <output>/_runs/uploads/: the markers of objects scored on upload
DONE = frozenset({"Succeeded"})
# a partition is a path of folder names built from the date: %Y, %m and %d each once, no
# other directive, and only characters that need no escaping in an S3 key or a URI
_FORMAT = re.compile(r"(?:[A-Za-z0-9=_.-]|%[Ymd])+(?:/(?:[A-Za-z0-9=_.-]|%[Ymd])+)*")


def check_format(pattern: str) -> str | None:
    """Why ``pattern`` is not a usable partition format, or None."""
    if not isinstance(pattern, str) or not _FORMAT.fullmatch(pattern):
        return (
            "a strftime pattern of folder names with %Y, %m and %d (letters, digits, = _ . -"
            " and / between folders), like dt=%Y-%m-%d"
        )
    missing = [d for d in ("%Y", "%m", "%d") if pattern.count(d) != 1]
    if missing:
        return f"{pattern!r} must hold each of %Y, %m and %d exactly once (not: {missing})"
    if pattern.split("/")[0] == UPLOADS:
        return f"{pattern!r} cannot start with the folder {UPLOADS!r} (where upload markers go)"
    return None


def partition_pattern(pattern: str) -> re.Pattern[str]:
    """What a day's partition folder looks like under the input prefix (``dt=2026-11-01/``
    for ``dt=%Y-%m-%d``): uploads into one are left to the schedule. The digits are
    captured as groups ``Y``, ``m`` and ``d`` (ASCII only: ``\\d`` would take any Unicode
    digit, which no partition this module writes holds)."""
    problem = check_format(pattern)
    if problem:
        raise ValueError(f"partition_format: {problem}")
    digits = {"%Y": "(?P<Y>[0-9]{4})", "%m": "(?P<m>[0-9]{2})", "%d": "(?P<d>[0-9]{2})"}
    parts = re.split(r"(%[Ymd])", pattern)
    return re.compile("".join(digits.get(p, re.escape(p)) for p in parts) + "/")


def format_partition(pattern: str, day: date) -> str:
    """``pattern`` applied to ``day``, the year always four digits (``dt=0999-01-02``).

    Not ``strftime``: glibc's ``%Y`` writes year 999 as ``999``, which no partition pattern
    (four digits) recognises, so its run's marker would never be completed."""
    values = {"%Y": f"{day.year:04d}", "%m": f"{day.month:02d}", "%d": f"{day.day:02d}"}
    return re.sub(r"%[Ymd]", lambda found: values[found.group(0)], pattern)


def partition_day(pattern: re.Pattern[str], relative: str) -> date | None:
    """The day of the partition ``relative`` (a key under the input prefix) starts with, or
    None when it is not in a day partition; ``ValueError`` when its folder is shaped like one
    but names no date (``dt=2026-02-30/``): the schedule never builds that folder."""
    found = pattern.match(relative)
    if found is None:
        return None
    year, month, day = (int(found.group(name)) for name in ("Y", "m", "d"))
    try:
        return date(year, month, day)
    except ValueError:
        folder = found.group(0)
        raise ValueError(
            f"{folder} is shaped like a day partition but {year:04d}-{month:02d}-{day:02d} is "
            "no date, so no schedule or backfill ever reads it: move the file to a real "
            "day's folder"
        ) from None


@dataclass(frozen=True)
class Layout:
    """Where a stage's partitions and markers live."""

    input_data_url: str
    output_data_url: str
    partition_format: str = DEFAULT_FORMAT

    def __post_init__(self) -> None:
        problem = check_format(self.partition_format)
        if problem:
            raise ValueError(f"partition_format: {problem}")
        parse_s3_uri(self.input_data_url)
        parse_s3_uri(self.output_data_url)

    def partition(self, day: date) -> str:
        return format_partition(self.partition_format, day)

    def input_uri(self, day: date) -> str:
        return f"{self.input_data_url.rstrip('/')}/{self.partition(day)}/"

    def output_uri(self, day: date) -> str:
        # no trailing slash: the pipeline joins OutputDataUrl and the execution id with "/"
        return f"{self.output_data_url.rstrip('/')}/{self.partition(day)}"

    def marker_uri(self, day: date) -> str:
        return self.partition_marker_uri(self.partition(day))

    def partition_marker_uri(self, partition: str) -> str:
        return f"{self.output_data_url.rstrip('/')}/{MARKERS}/{partition}.json"


# how much of a CSV object is read at a time while looking for its first row
READ_CHUNK = 8 * 1024


def has_data(s3: S3Client, input_uri: str) -> bool:
    """Whether the partition holds an object Preprocess reads (``DATA_FORMATS``) with a row
    in it. Each object is read only as far as its first row."""
    return inspect_input(s3, input_uri)[0]


# What Preprocess reads, by the name's ending (pipelines/batch_inference/preprocess.py's
# EXTENSIONS: a test holds the two together), and how many non-blank lines make a row: CSV
# has a header, JSON Lines none; a Parquet file's rows are in its footer, so a non-empty one
# counts as data (Preprocess finds zero rows in one that has none, and the run says so).
DATA_FORMATS = {
    ".csv": "csv", ".csv.gz": "csv", ".parquet": "parquet",
    ".jsonl": "jsonl", ".jsonl.gz": "jsonl", ".ndjson": "jsonl", ".ndjson.gz": "jsonl",
}  # fmt: skip
_LINES_TO_A_ROW = {"csv": 2, "jsonl": 1}


def data_format(key: str) -> str | None:
    """The format Preprocess reads ``key`` as, or None when it skips it."""
    name = key.lower()
    return next((kind for end, kind in DATA_FORMATS.items() if name.endswith(end)), None)


def inspect_input(s3: S3Client, input_uri: str) -> tuple[bool, str]:
    """Whether the partition holds data (``has_data``), and a fingerprint of what it holds
    (each object's key, size and ETag): part of a start's token, so the same input in the
    same marker state starts one run, and new data (or a day scored again after its marker
    expired) a new one."""
    bucket, prefix = parse_s3_uri(input_uri)
    found = False
    digest = hashlib.sha256()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            size = item.get("Size", 0)
            digest.update(f"{item['Key']}\0{size}\0{item.get('ETag', '')}\n".encode())
            found = found or holds_rows(s3, bucket, item["Key"], size)
    return found, digest.hexdigest()


def holds_rows(s3: S3Client, bucket: str, key: str, size: int | None = None) -> bool:
    """Whether the object is one Preprocess reads with a row in it (a CSV's second non-blank
    line, a JSON Lines file's first; gzip is read through). Streamed and stopped there, so a
    large file costs a few KB and a large file with no row (a 70 KiB header, or blank lines)
    is no data, as Preprocess would find it."""
    kind = data_format(key)
    if kind is None or size == 0:
        return False
    if kind == "parquet":  # rows in its footer: any file that can hold one counts
        if size is None:
            size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
        return size > 0
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    chunks: Iterable[bytes] = iter(lambda: body.read(READ_CHUNK), b"")
    if key.lower().endswith(".gz"):
        chunks = _gunzipped(chunks)
    try:
        return _lines_found(chunks, _LINES_TO_A_ROW[kind])
    except zlib.error:
        return True  # a damaged stream: Preprocess quarantines it and the run says why
    finally:
        body.close()  # the rest is never downloaded


def _gunzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (members after the first too), chunk by chunk."""
    decompressor = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        while chunk:
            yield decompressor.decompress(chunk)
            chunk = decompressor.unused_data
            if chunk:  # another gzip member begins
                decompressor = zlib.decompressobj(wbits=31)


def _lines_found(chunks: Iterable[bytes], wanted: int) -> bool:
    """Whether the bytes hold ``wanted`` non-blank lines (``\\n``, ``\\r\\n`` or ``\\r``
    ends a line), decided without keeping more than one chunk."""
    lines = 0  # non-blank lines begun so far
    counted = False  # whether the current line is one of them
    for chunk in chunks:
        for index, piece in enumerate(chunk.replace(b"\r", b"\n").split(b"\n")):
            if index:
                counted = False  # a line ended in this chunk: the piece begins another
            if not counted and piece.strip():
                lines, counted = lines + 1, True
                if lines == wanted:
                    return True
    return False


def read_marker(s3: S3Client, uri: str) -> dict[str, Any] | None:
    """The day's marker, or None when there is none (a marker that is not ours is an error:
    overwriting it could lose what another tool recorded).

    Existence is asked with a listing: a role that may list only under a prefix (the
    functions' ``s3:prefix`` condition) gets 403, not 404, for a GetObject of a missing key,
    and a 403 must not read as "no marker" either."""
    return read_marker_and_state(s3, uri)[0]


def read_marker_and_state(s3: S3Client, uri: str) -> tuple[dict[str, Any] | None, str]:
    """The marker and its state (its ETag, or ``no_marker_state()``): what a start's token
    is made of."""
    bucket, key = parse_s3_uri(uri)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not listed or listed[0]["Key"] != key:
        return None, no_marker_state()
    response = s3.get_object(Bucket=bucket, Key=key)
    try:
        marker = json.loads(response["Body"].read())
    except ValueError:
        marker = None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        raise ValueError(f"{uri} is not a {MARKER_FORMAT} marker: move it away or fix it")
    problem = _marker_problem(marker)
    if problem:
        raise ValueError(f"{uri} is a broken {MARKER_FORMAT} marker ({problem}): fix or delete it")
    return marker, str(response.get("ETag", "")).strip('"') or "unknown"


# every status a marker can hold: SageMaker's (executions) and a day without data's
STATUSES = RUNNING | ENDED | {"Empty"}


def _marker_problem(marker: dict[str, Any]) -> str | None:
    """What makes a marker in our format unusable (a status that is no string, an execution
    that is no ARN): decided once at the read, so a bad marker is one day's error and never
    a TypeError deep in the decision that stops the other days."""
    status = marker.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        return f"status {status!r} is not one of {', '.join(sorted(STATUSES))}"
    arn = marker.get("execution_arn")
    if arn is not None and not isinstance(arn, str):
        return f"execution_arn {arn!r} is not an ARN"
    for field in ("output", "version"):
        if field in marker and not isinstance(marker[field], str):
            return f"{field} {marker[field]!r} is not a string"
    return None


def no_marker_state() -> str:
    """The state of a day or object without a marker: ``none@<today, UTC>``. Dated, so that
    once a marker has expired (it lives under the output prefix and its lifecycle) a new
    start never sends the token of the first one, which SageMaker could answer with that old
    execution; starters on the same day still send one token."""
    return f"none@{datetime.now(UTC).date().isoformat()}"


def start_token(pipeline: str, partition: str, state: str) -> str:
    """``ClientRequestToken`` of a start: the same for every starter that saw the same marker
    and input (the schedule, a retry of its event, a backfill in the same minute, an upload
    event delivered twice), so they get one execution; a new attempt (the marker or the
    input changed) gets a new one. 64 hex characters. ``partition``: the day's partition, or
    the uploaded object's key under the input prefix."""
    return hashlib.sha256(f"{pipeline}|{partition}|{state}".encode()).hexdigest()


def write_marker(
    s3: S3Client,
    uri: str,
    marker: dict[str, Any],
    kms_key_id: str | None,
    if_match: str | None = None,
) -> None:
    """Write the marker; with ``if_match`` (the ETag it was read with) only if nobody has
    written it since: S3 answers 412 PreconditionFailed otherwise."""
    bucket, key = parse_s3_uri(uri)
    condition = {"IfMatch": f'"{if_match}"'} if if_match else {}
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=(json.dumps({"format": MARKER_FORMAT, **marker}, indent=2) + "\n").encode(),
        ContentType="application/json",
        **sse_arguments(kms_key_id),
        **condition,  # type: ignore[arg-type]
    )


def run_counts(s3: S3Client, output_uri: str, execution_id: str) -> dict[str, int]:
    """Rows read / rejected / scored of a succeeded run, from its Preprocess summaries (a run
    that succeeded scored every row Preprocess kept: the Transform fails on any it cannot)."""
    bucket, prefix = parse_s3_uri(output_uri)
    # the pipeline joins OutputDataUrl, the execution id and the folders with "/", as given
    run = f"{prefix}/{execution_id}/" if prefix else f"{execution_id}/"
    counts = {"rows_read": 0, "rows_rejected": 0, "rows_scored": 0}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{run}preprocess/summary/"
    )
    for page in pages:
        for item in page.get("Contents", []):
            summary = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            counts["rows_read"] += summary["rows_read"]
            counts["rows_rejected"] += summary["rows_rejected"]
            counts["rows_scored"] += summary["rows_written"]
    return counts


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def outcome_marker(
    s3: S3Client,
    layout: Layout,
    day: date,
    execution_arn: str,
    status: str,
    reason: str | None,
    started: str | None,
    cost: CostOf | None = None,
) -> dict[str, Any]:
    """The marker of a day's run that ended: its status, and its rows when it succeeded."""
    begun = started_marker(layout, day, execution_arn) | {"started": started}
    return ended_marker(s3, begun, status, reason, cost)


# (execution ARN, rows scored or None) -> the run's cost (stage_runtime/run_cost.py), or None
CostOf = Callable[[str, int | None], dict[str, Any] | None]


def ended_marker(
    s3: S3Client,
    marker: dict[str, Any],
    status: str,
    reason: str | None,
    cost: CostOf | None = None,
) -> dict[str, Any]:
    """``marker`` (a run's, still Executing) rewritten with how the run ended: its status,
    and its rows (read from the run's output) when it succeeded, else the reason; with
    ``cost``, what the run cost (a failed run's jobs cost too)."""
    ended = {k: v for k, v in marker.items() if k not in ("format", "failure_reason")}
    ended |= {"status": status, "finished": now()}
    if status == "Succeeded":
        execution_id = marker["execution_arn"].rsplit("/", 1)[-1]
        ended |= run_counts(s3, marker["output"], execution_id)
    elif reason:
        ended["failure_reason"] = reason
    if cost is not None and marker.get("execution_arn"):
        priced = cost(marker["execution_arn"], ended.get("rows_scored"))
        if priced is not None:
            ended["cost"] = priced
    return ended


def complete(
    s3: S3Client,
    uri: str,
    marker: dict[str, Any],
    execution_status: Callable[[str], tuple[str, str | None]],
    kms_key_id: str | None,
    if_match: str | None = None,
    cost: CostOf | None = None,
) -> tuple[dict[str, Any], bool]:
    """The marker at ``uri`` completed if its run has ended (written back), and whether it
    was; a marker of a run still going, or of no run, is returned as it is. ``if_match``:
    write only if the marker is still the one read (else S3's 412 is raised).

    A running marker that names no execution is completed as failed: nothing will ever end
    it, and its day or object would otherwise be held for good."""
    if marker.get("status") not in RUNNING:
        return marker, False
    arn = marker.get("execution_arn")
    if arn:
        status, reason = execution_status(arn)
    else:
        status = "Failed"
        reason = "the marker said Executing but named no execution; recorded as failed"
    if status in RUNNING:
        return marker | {"status": status}, False
    ended = ended_marker(s3, marker, status, reason, cost)
    write_marker(s3, uri, ended, kms_key_id, if_match)
    return ended, True


Action = Literal["start", "skip", "empty"]


@dataclass(frozen=True)
class Decision:
    day: date
    action: Action
    reason: str
    # the marker's status before this look, and its state (what a start's token is made of)
    previous: str | None = None
    state: str = "none"


def decide(
    s3: S3Client,
    layout: Layout,
    day: date,
    force: bool,
    execution_status: Callable[[str], tuple[str, str | None]],
    kms_key_id: str | None = None,
    cost: CostOf | None = None,
) -> Decision:
    """What to do for ``day``; a marker of a run that has ended since is rewritten first
    (with ``cost``: and what the run cost).

    ``execution_status(arn)`` -> (status, failure reason): SageMaker's, or the local record's.
    A running execution is never doubled, even with ``force``.
    """
    uri = layout.marker_uri(day)
    marker, state = read_marker_and_state(s3, uri)
    previous = marker.get("status") if marker else None
    completed = False
    if marker is not None:
        marker, completed = complete(s3, uri, marker, execution_status, kms_key_id, cost=cost)
        if marker["status"] in RUNNING:
            status, arn = marker["status"].lower(), marker["execution_arn"]
            return Decision(day, "skip", f"a run is still {status}: {arn}", previous)
        if completed:
            state = f"{state}|{marker['status']}"  # rewritten: a new attempt from here
    done = marker is not None and marker.get("status") in DONE
    scored = (
        f"already scored ({marker.get('rows_scored', 0)} rows) by {marker['execution_arn']}"
        if marker is not None and done
        else ""
    )
    if done and not force:
        return Decision(day, "skip", f"{scored}; --force scores it again", previous)
    data, fingerprint = inspect_input(s3, layout.input_uri(day))
    if not data:
        if done:  # forced, but nothing to score now: keep the record of the run that did
            return Decision(day, "skip", f"{scored}; its input holds no data now", previous)
        reason = f"no CSV object with data under {layout.input_uri(day)}"
        return Decision(day, "empty", reason, previous)
    retry = _last_run(marker, completed) if marker and marker["status"] in ENDED else ""
    reason = f"scoring {layout.input_uri(day)}{retry}"
    return Decision(day, "start", reason, previous, f"{state}|{fingerprint}")


def _no_run() -> dict[str, Any]:
    """What an ``Empty`` marker (a day's or an upload's) says of the run it did not start."""
    return {
        "status": "Empty",
        "execution_arn": None,
        "started": None,
        "finished": now(),
        "rows_read": 0,
        "rows_rejected": 0,
        "rows_scored": 0,
    }


def empty_marker(layout: Layout, day: date) -> dict[str, Any]:
    return {
        "partition": layout.partition(day),
        "date": day.isoformat(),
        "input": layout.input_uri(day),
        "output": layout.output_uri(day),
        **_no_run(),
    }


def started_marker(layout: Layout, day: date, execution_arn: str) -> dict[str, Any]:
    return {
        "partition": layout.partition(day),
        "date": day.isoformat(),
        "input": layout.input_uri(day),
        "output": layout.output_uri(day),
        "status": "Executing",
        "execution_arn": execution_arn,
        "started": now(),
    }


def days(first: date, last: date | None) -> Iterable[date]:
    """``first`` to ``last`` (inclusive), one day at a time."""
    last = last or first
    if last < first:
        raise ValueError(f"--until {last} is before --date {first}")
    return (date.fromordinal(o) for o in range(first.toordinal(), last.toordinal() + 1))


def upload_marker_uri(output_data_url: str, relative_key: str) -> str:
    """Where the marker of an object scored on upload lives: its key under the input prefix,
    below ``<OutputDataUrl>/_runs/uploads/``."""
    return f"{output_data_url.rstrip('/')}/{MARKERS}/{UPLOADS}/{relative_key}.json"


def marker_of_run(layout: Layout, parameters: dict[str, str]) -> str | None:
    """The marker a run's parameters belong to: a day's (its input is a day partition) or an
    uploaded object's (an object under the input prefix); None for a run started otherwise
    (by hand, on another prefix), which no marker records."""
    base = layout.input_data_url.rstrip("/") + "/"
    input_url = parameters.get("InputDataUrl", "")
    if not input_url.startswith(base) or input_url == base:
        return None
    relative = input_url[len(base) :]
    if partition_pattern(layout.partition_format).fullmatch(relative):
        return layout.partition_marker_uri(relative.rstrip("/"))
    if relative.endswith("/") or "OutputDataUrl" not in parameters:
        return None
    return upload_marker_uri(parameters["OutputDataUrl"], relative)


UploadAction = Literal["start", "skip", "wait"]


@dataclass(frozen=True)
class UploadDecision:
    action: UploadAction
    reason: str
    state: str = "none"  # what a start's token is made of: the marker's state, the version


def decide_upload(
    s3: S3Client,
    uri: str,
    object_uri: str,
    version: str,
    execution_status: Callable[[str], tuple[str, str | None]],
    kms_key_id: str | None = None,
) -> UploadDecision:
    """What to do for an upload (``version``) whose object's marker is at ``uri``: start a
    run (a new upload, or this upload's last run failed), skip (this upload is scored or
    being scored), or wait (a run on an earlier upload is still going: a second one now
    would race it for the marker)."""
    marker, state = read_marker_and_state(s3, uri)
    completed = False
    if marker is not None:
        marker, completed = complete(s3, uri, marker, execution_status, kms_key_id)
        if completed:
            state = f"{state}|{marker['status']}"
        arn = marker.get("execution_arn")
        same = marker.get("version") == version
        if marker["status"] in RUNNING and same:
            return UploadDecision("skip", f"{object_uri} is being scored by {arn}")
        if marker["status"] in RUNNING:
            return UploadDecision("wait", f"a run on an earlier {object_uri} is going: {arn}")
        if marker["status"] in DONE and same:
            rows = marker.get("rows_scored", 0)
            done = f"{object_uri} (this upload) is already scored ({rows} rows) by {arn}"
            return UploadDecision("skip", done)
        if marker["status"] == "Empty" and same:  # an upload never changes: no row, ever
            return UploadDecision("skip", f"{object_uri} (this upload) holds no row to score")
    again = _last_run(marker, completed) if marker and marker["status"] in ENDED else ""
    return UploadDecision("start", f"scoring {object_uri}{again}", f"{state}|{version}")


def _last_run(marker: dict[str, Any], completed_now: bool) -> str:
    """`` (the last run failed)``, with the reason when this look found it out (an
    execution SageMaker no longer knows, say): the line that starts the next run says why."""
    reason = marker.get("failure_reason") if completed_now else None
    return f" (the last run {marker['status'].lower()}{f': {reason}' if reason else ''})"


def upload_started_marker(
    object_uri: str, version: str, output_data_url: str, execution_arn: str
) -> dict[str, Any]:
    return {
        "object": object_uri,
        "version": version,  # the upload: its VersionId (or ETag, in a bucket without versions)
        "input": object_uri,
        "output": output_data_url,  # as given: the pipeline joins it with "/"
        "status": "Executing",
        "execution_arn": execution_arn,
        "started": now(),
    }


def upload_empty_marker(object_uri: str, version: str, output_data_url: str) -> dict[str, Any]:
    """An upload without a row below its header: the day's ``Empty`` (zero rows, no run,
    no alarm); a run would fail (Preprocess reads no row, the Transform gets no input)."""
    return {
        "object": object_uri,
        "version": version,
        "input": object_uri,
        "output": output_data_url,
        **_no_run(),
    }
