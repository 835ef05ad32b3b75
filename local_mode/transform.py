"""Run a Transform step here with SageMaker Batch Transform's semantics.

Each input object is streamed, split into records (``SplitType``), filtered
(``InputFilter``), packed into requests (``BatchStrategy``, ``MaxPayloadInMB``), served by
the model's container (``container.Container``: the scikit-learn image's real serving stack
in its runtime twin, over HTTP, as SageMaker sends Transform's mini-batches), joined back
to its input (``JoinSource``), filtered again (``OutputFilter``) and assembled
(``AssembleWith``) into ``<S3OutputPath>/<input key relative to the prefix>.out``; plain
CSV batches with a ``$[k:]`` filter take ``columnar``'s Arrow path, with the same bytes.
``InstanceCount`` N deals the objects to N worker processes, as SageMaker deals them to N
instances; each keeps up to ``MaxConcurrentTransforms`` requests in flight against its
container (from one object or several), and writes every object's answers in its records'
order. A request gets ``ModelClientConfig``'s ``InvocationsTimeoutInSeconds`` to answer and
is sent again up to ``InvocationsMaxRetries`` times (AWS's defaults, 600 s and 3, when the
request sets none); a request still unanswered fails the step naming the timeout, and one
that makes the model raise fails it with the position of the first record that fails on
its own.

``LOCAL_SERVING=in-process`` serves the model in this process instead
(``serving.ModelServer``), a faster imitation that ``tests/test_container_contract.py``
holds to the container's statuses, bodies, content types and printed lines.
"""

from __future__ import annotations

import collections
import concurrent.futures
import gzip
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import boto3
import botocore.exceptions
import numpy as np

from common.image_uris import local_refusal
from common.s3_locations import parse_s3_uri, transfer_extra_args
from local_mode import columnar as columnar_path
from local_mode import cores, records, storage, twin
from local_mode.container import Container, ContainerFailed, ContainerRefusal, InvocationTimeout
from local_mode.expressions import DefinitionError
from local_mode.invocations import Backend
from local_mode.processing import StepFailed, instance_count, metric_lines_in
from local_mode.serving import ModelLoadError, ModelServer, extract_artifact

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sagemaker import SageMakerClient

READ_CHUNK = 8 * 2**20
SERVING_VARIABLE = "LOCAL_SERVING"  # "container" (the default) or "in-process"
DEFAULT_PAYLOAD_MB = 6
# CreateTransformJob's defaults: MaxConcurrentTransforms 0 or unset is 1 for a container
# without /execution-parameters (this one does not ask it); ModelClientConfig's are 600 s, 3
DEFAULT_CONCURRENT = 1
DEFAULT_TIMEOUT_SECONDS = 600
DEFAULT_MAX_RETRIES = 3
JSON_TYPES = {"application/json", "application/jsonlines", "application/x-jsonlines"}


@dataclass(frozen=True)
class TransformOptions:
    """The parts of a CreateTransformJob request that shape how records flow."""

    content_type: str
    accept: str
    split_type: str
    compression: str
    batch_strategy: str
    max_payload_bytes: int
    assemble_with: str
    input_filter: records.Selector
    output_filter: records.Selector
    join_input: bool
    output_path: str
    input_uri: str
    kms_key_id: str | None
    max_concurrent: int = DEFAULT_CONCURRENT
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> TransformOptions:
        source = arguments["TransformInput"]["DataSource"]["S3DataSource"]
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise DefinitionError(
                f"S3DataType {source['S3DataType']} is not supported in local mode: use S3Prefix"
            )
        transform_input, output = arguments["TransformInput"], arguments["TransformOutput"]
        processing = arguments.get("DataProcessing") or {}
        split = transform_input.get("SplitType", "None")
        if split not in ("None", "Line"):
            raise DefinitionError(f"SplitType {split} is not supported in local mode")
        compression = transform_input.get("CompressionType", "None")
        if compression not in ("None", "Gzip"):
            raise DefinitionError(f"CompressionType {compression} is not supported")
        payload_mb = int(arguments.get("MaxPayloadInMB", DEFAULT_PAYLOAD_MB))
        client = arguments.get("ModelClientConfig") or {}
        options = cls(
            content_type=transform_input.get("ContentType", "application/octet-stream"),
            accept=output.get("Accept") or transform_input.get("ContentType", "text/csv"),
            split_type=split,
            compression=compression,
            batch_strategy=arguments.get("BatchStrategy", "SingleRecord"),
            max_payload_bytes=payload_mb * 2**20 if payload_mb else 0,
            assemble_with=output.get("AssembleWith", "None"),
            input_filter=records.parse_selector(processing.get("InputFilter")),
            output_filter=records.parse_selector(processing.get("OutputFilter")),
            join_input=processing.get("JoinSource", "None") == "Input",
            output_path=output["S3OutputPath"],
            input_uri=source["S3Uri"],
            kms_key_id=output.get("KmsKeyId"),
            max_concurrent=int(arguments.get("MaxConcurrentTransforms") or DEFAULT_CONCURRENT),
            timeout_seconds=int(client.get("InvocationsTimeoutInSeconds", DEFAULT_TIMEOUT_SECONDS)),
            max_retries=int(client.get("InvocationsMaxRetries", DEFAULT_MAX_RETRIES)),
        )
        filtering = not (options.input_filter.selects_all and options.output_filter.selects_all)
        if split == "None" and (filtering or options.join_input):
            raise DefinitionError(
                "InputFilter, OutputFilter and JoinSource work per record: use SplitType Line"
            )
        if not payload_mb and split == "Line" and options.batch_strategy == "MultiRecord":
            raise DefinitionError("MaxPayloadInMB 0 (unlimited) needs SplitType None")
        return options

    @property
    def is_json(self) -> bool:
        return self.content_type in JSON_TYPES


@dataclass
class ObjectResult:
    source: str
    output: str
    records_in: int
    records_out: int
    seconds: float
    # the metric lines the handlers printed for this object (the job's log on AWS)
    metrics: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelSpec:
    """Where the model's artifact lives and the environment its container gets."""

    model_data_url: str
    environment: dict[str, str]


def resolve_model(sagemaker: SageMakerClient, model_name: str) -> ModelSpec:
    """``ModelName`` -> the model's container -> (its package's) ``ModelDataUrl``."""
    try:
        model = sagemaker.describe_model(ModelName=model_name)
    except sagemaker.exceptions.ClientError as error:
        raise StepFailed(f"model {model_name!r} cannot be described: {error}") from None
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    if len(containers) != 1:
        raise DefinitionError("local mode serves single-container models only")
    container = containers[0]
    environment = dict(container.get("Environment") or {})
    url, image = container.get("ModelDataUrl"), container.get("Image")
    if container.get("ModelPackageName"):
        package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
        (package_container, *others) = package["InferenceSpecification"]["Containers"]
        if others:
            raise DefinitionError("local mode serves single-container model packages only")
        environment = {**(package_container.get("Environment") or {}), **environment}
        url = url or package_container.get("ModelDataUrl")
        image = image or package_container.get("Image")
    refusal = local_refusal(image)
    if refusal:
        raise StepFailed(f"model {model_name!r}: {refusal}")
    if not url:
        raise StepFailed(f"model {model_name!r} has no ModelDataUrl to load")
    return ModelSpec(url, environment)


def serving_mode() -> str:
    """``container`` (the image's real serving stack) unless ``LOCAL_SERVING=in-process``."""
    mode = os.environ.get(SERVING_VARIABLE) or "container"
    if mode not in ("container", "in-process"):
        raise DefinitionError(f"{SERVING_VARIABLE}={mode}: use container or in-process")
    return mode


def serve_model(model_dir: Path, environment: dict[str, str], work_dir: Path) -> Backend:
    """The unpacked model served as the local mode's ``LOCAL_SERVING`` says: its container
    started, or loaded in this process (the caller calls ``stop()`` either way)."""
    if serving_mode() == "in-process":
        try:
            return ModelServer(model_dir, environment)
        except ModelLoadError as error:
            raise StepFailed(str(error)) from None
    # one gunicorn worker per vCPU, as the image starts on an instance: the CPUs this
    # instance may use (the stack's own count, cpu_count(), would see the whole machine)
    workers = len(os.sched_getaffinity(0))
    try:
        return Container(
            model_dir, environment, workers=workers, work_dir=work_dir / "container"
        ).start()
    except (ContainerFailed, twin.TwinMissing) as error:
        raise StepFailed(f"the model's container did not start: {error}") from None


def load_model(s3: S3Client, spec: ModelSpec, work_dir: Path) -> Backend:
    bucket, key = parse_s3_uri(spec.model_data_url)
    archive = work_dir / "model.tar.gz"
    try:
        storage.download(s3, bucket, key, archive)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        raise StepFailed(f"model artifact {spec.model_data_url} cannot be read ({code})") from None
    try:
        model_dir = extract_artifact(archive, work_dir / "model")
    except ModelLoadError as error:
        raise StepFailed(str(error)) from None
    return serve_model(model_dir, spec.environment, work_dir)


# ----------------------------------------------------------------------- one object


def _chunks(body: Any, compression: str) -> Iterator[bytes]:
    stream = gzip.GzipFile(fileobj=body) if compression == "Gzip" else body
    while chunk := stream.read(READ_CHUNK):
        yield chunk


def _line_batches(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Whole lines only: a record never spans two batches."""
    carry = b""
    for chunk in chunks:
        cut = chunk.rfind(b"\n") + 1
        if cut:
            # one copy: the carried partial line and the chunk's whole lines, joined in place
            yield b"".join((carry, memoryview(chunk)[:cut])) if carry else chunk[:cut]
            carry = chunk[cut:]
        else:
            carry += chunk
    if carry:
        yield carry


def request_ranges(sizes: np.ndarray, options: TransformOptions) -> Iterator[tuple[int, int]]:
    """``(first, last)`` record ranges, one per request, within the payload limit.

    ``sizes`` are the bytes each record adds to a request (itself and a newline)."""
    count = len(sizes)
    if options.batch_strategy != "MultiRecord":
        yield from ((i, i + 1) for i in range(count))
        return
    total = np.cumsum(sizes)  # payload bytes up to and including record i
    first = 0
    while first < count:
        spent = int(total[first - 1]) if first else 0
        last = int(np.searchsorted(total, spent + options.max_payload_bytes, side="right"))
        last = max(last, first + 1)
        yield first, last
        first = last


class Batch(Protocol):
    """A batch of whole records, as the requests and the join read it."""

    # whether any record may hold a quote (the exact, slower CSV paths then)
    quoted: bool

    def __len__(self) -> int: ...

    def payload_sizes(self) -> np.ndarray: ...

    def payload(self, first: int, last: int) -> bytes: ...

    def model_records(self, first: int, last: int) -> records.Lines: ...

    def lines(self, first: int, last: int) -> records.Lines: ...

    def first_fields(self, first: int, last: int) -> records.Lines | None: ...

    def widths(self, first: int, last: int) -> np.ndarray:
        """How many fields each record has (unquoted CSV)."""
        ...


@dataclass
class RecordBatch:
    """A batch as lists of records: as read, and what the model gets after ``InputFilter``."""

    originals: records.Lines
    model_input: records.Lines
    quoted: bool
    ids: records.Lines | None = None  # the records' first fields, when already split off

    def __len__(self) -> int:
        return len(self.originals)

    def payload_sizes(self) -> np.ndarray:
        count = len(self.model_input)
        return np.fromiter(map(len, self.model_input), dtype=np.int64, count=count) + 1

    def payload(self, first: int, last: int) -> bytes:
        return records.to_payload(self.model_input[first:last])

    def model_records(self, first: int, last: int) -> records.Lines:
        return self.model_input[first:last]

    def lines(self, first: int, last: int) -> records.Lines:
        return self.originals[first:last]

    def first_fields(self, first: int, last: int) -> records.Lines | None:
        return self.ids[first:last] if self.ids is not None else None

    def widths(self, first: int, last: int) -> np.ndarray:
        lines = self.originals[first:last]
        return np.fromiter((line.count(b",") + 1 for line in lines), np.int64, len(lines))


@dataclass
class Pending:
    """A request sent (or queued) and where its records are: collected in order."""

    batch: Batch
    first: int
    last: int
    offset: int  # records of the object before the batch
    source: str
    answer: concurrent.futures.Future[bytes]


class RecordTransformer:
    """Turns one object's records into output bytes for one loaded model.

    ``columnar`` (default on) serves plain CSV batches through ``columnar.LineTable``, which
    gives the same bytes as the record path with far fewer Python objects per record.
    With ``MaxConcurrentTransforms`` N over 1, requests go out from N threads (one
    connection each), at most N at a time for this instance whatever object they come from;
    ``close()`` stops them."""

    def __init__(self, server: Backend, options: TransformOptions, columnar: bool = True):
        self.server, self.options = server, options
        self.window = max(options.max_concurrent, 1)
        self._pool = (
            concurrent.futures.ThreadPoolExecutor(self.window, thread_name_prefix="invocation")
            if self.window > 1
            else None
        )
        self._in_flight = threading.BoundedSemaphore(self.window)
        self._select = records.select_json if options.is_json else records.select_csv
        self._join = records.join_json if options.is_json else records.join_csv
        self._drop = (
            columnar_path.drops_leading_fields(options.input_filter)
            if columnar and not options.is_json
            else None
        )

    def prepare(self, data: bytes) -> Batch:
        """Split and filter a batch of whole lines (raises ``RecordError`` for a bad record)."""
        if self._drop is not None and (table := columnar_path.LineTable.of(data, self._drop)):
            return table
        originals = records.split_lines(data)
        quoted = b'"' in data  # one C-speed scan instead of one per record
        selector = self.options.input_filter
        if self.options.is_json:
            return RecordBatch(originals, records.select_json(originals, selector), quoted)
        if selector.is_slice and selector.start == 1 and selector.stop is None and not quoted:
            # the usual "drop the id": keep the ids too, the join needs them next
            ids, features = records.split_first_field(originals)
            return RecordBatch(originals, features, quoted, ids)
        return RecordBatch(originals, records.select_csv(originals, selector, quoted), quoted)

    def requests(self, batch: Batch, source: str, offset: int) -> Iterator[tuple[int, int, bytes]]:
        """``(first, last, payload)`` of each request of a prepared batch, in order."""
        options = self.options
        for first, last in request_ranges(batch.payload_sizes(), options):
            payload = batch.payload(first, last)
            if options.max_payload_bytes and len(payload) > options.max_payload_bytes:
                raise StepFailed(
                    f"record {offset + first + 1} of {source} is {len(payload)} bytes, over "
                    f"MaxPayloadInMB ({options.max_payload_bytes // 2**20})"
                )
            yield first, last, payload

    def submit(self, payload: bytes) -> concurrent.futures.Future[bytes]:
        """Send ``payload`` (with its timeout and retries): at once in this thread when one
        request at a time is allowed, else from a sender thread once fewer than
        ``MaxConcurrentTransforms`` of this instance's requests are in flight."""
        if self._pool is None:
            answer: concurrent.futures.Future[bytes] = concurrent.futures.Future()
            try:
                answer.set_result(self.send(payload))
            except Exception as error:
                answer.set_exception(error)
            return answer
        self._in_flight.acquire()
        try:
            answer = self._pool.submit(self.send, payload)
        except BaseException:
            self._in_flight.release()
            raise
        answer.add_done_callback(lambda _: self._in_flight.release())
        return answer

    def send(self, payload: bytes) -> bytes:
        """One invocation as Batch Transform makes it: sent again on any failure, up to
        ``InvocationsMaxRetries`` times; the last failure is raised."""
        options = self.options
        for attempt in range(options.max_retries + 1):
            try:
                return self.server.invoke(
                    payload, options.content_type, options.accept, options.timeout_seconds
                )
            except Exception:
                if attempt == options.max_retries:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def collect(self, pending: Pending) -> tuple[bytes, int]:
        """The output of a sent request, once it is answered: (bytes, records out)."""
        try:
            response = pending.answer.result()
        except Exception as error:
            raise self._request_failure(pending, error) from None
        return self._assemble(
            response,
            pending.batch,
            pending.first,
            pending.last,
            pending.source,
            pending.offset + pending.first,
        )

    def run(self, batch: Batch, source: str, offset: int) -> tuple[bytes, int, int]:
        """Serve a prepared batch, one request at a time; return (output bytes, records
        in, records out)."""
        pieces, produced = [], 0
        for first, last, payload in self.requests(batch, source, offset):
            sent = Pending(batch, first, last, offset, source, self.submit(payload))
            output, count = self.collect(sent)
            produced += count
            pieces.append(output)
        return b"".join(pieces), len(batch), produced

    def whole(self, data: bytes, source: str = "the object") -> tuple[bytes, int, int]:
        """``SplitType=None``: the whole object is one request."""
        try:
            response = self.send(data)
        except InvocationTimeout as timeout:
            raise self._timeout_failure(source, timeout) from None
        if self.options.assemble_with == "Line" and response and not response.endswith(b"\n"):
            response += b"\n"
        return response, 1, 1

    def close(self) -> None:
        """Stop the sender threads (a request in flight is waited for; queued ones dropped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _timeout_failure(self, where: str, timeout: InvocationTimeout) -> StepFailed:
        attempts = self.options.max_retries + 1
        return StepFailed(
            f"{where}: no answer within {timeout.seconds:g} s "
            f"(ModelClientConfig.InvocationsTimeoutInSeconds) in {attempts} attempt(s) "
            "(InvocationsMaxRetries + 1): send fewer records per request (MaxPayloadInMB) or "
            "allow more time"
        )

    def _request_failure(self, pending: Pending, batch_error: Exception) -> StepFailed:
        options = self.options
        first, last, offset, source = pending.first, pending.last, pending.offset, pending.source
        if isinstance(batch_error, InvocationTimeout):
            return self._timeout_failure(
                f"records {offset + first + 1}-{offset + last} of {source}", batch_error
            )
        # find the first record that fails alone, to report where the data is bad
        for index, record in enumerate(pending.batch.model_records(first, last)):
            try:
                self.server.invoke(
                    record + b"\n", options.content_type, options.accept, options.timeout_seconds
                )
            except Exception as error:
                return self.record_failure(source, offset + first, index, error)
        return StepFailed(
            f"records {offset + first + 1}-{offset + last} of {source} fail together: "
            f"{type(batch_error).__name__}: {batch_error}"
        )

    def _assemble(
        self, response: bytes, batch: Batch, first: int, last: int, source: str, offset: int
    ) -> tuple[bytes, int]:
        options = self.options
        if not (options.join_input or not options.output_filter.selects_all):
            if options.assemble_with == "Line" and response and not response.endswith(b"\n"):
                response += b"\n"
            return response, last - first
        outputs = records.split_lines(response)
        try:
            selected = None
            width = options.output_filter.first_and_rest
            if options.join_input and options.output_filter.indices == (0, -1):
                # the usual id + prediction, from the ids when the batch has them split off
                ids = None if batch.quoted else batch.first_fields(first, last)
                if ids is not None:
                    selected = records.join_first_and_last(ids, outputs)
            elif options.join_input and width is not None and not batch.quoted:
                # the pipeline's id + the whole answer ($[0,k:] over records of k fields)
                ids = batch.first_fields(first, last)
                if ids is not None and bool((batch.widths(first, last) == width).all()):
                    selected = records.join_first_and_rest(ids, outputs)
            if selected is None and options.join_input and not options.is_json:
                selected = records.join_select_csv(
                    batch.lines(first, last), outputs, options.output_filter, batch.quoted
                )
            elif selected is None:
                joined = (
                    self._join(batch.lines(first, last), outputs) if options.join_input else outputs
                )
                selected = self._select(joined, options.output_filter)
        except records.RecordError as error:
            raise self.record_failure(source, offset, error.line or 0, error) from None
        if options.assemble_with == "Line":
            return records.to_payload(selected), len(selected)
        return b"".join(selected), len(selected)

    @staticmethod
    def record_failure(source: str, offset: int, index: int, error: Exception) -> StepFailed:
        # the container's answer says what it is itself (the handler's error, or the status)
        said = (
            str(error)
            if isinstance(error, ContainerRefusal)
            else f"{type(error).__name__}: {error}"
        )
        if isinstance(error, InvocationTimeout):
            said = f"{said} (ModelClientConfig.InvocationsTimeoutInSeconds)"
        return StepFailed(f"record {offset + index + 1} of {source}: {said}")


class ObjectStore(Protocol):
    """The two calls :func:`transform_object` makes: an S3 client, or the benchmark's folder."""

    def get_object(self, *, Bucket: str, Key: str) -> Any: ...

    def upload_file(
        self, filename: str, bucket: str, key: str, /, ExtraArgs: dict[str, Any] | None = None
    ) -> None: ...


def _one_ahead(prepare: Callable[[bytes], Batch], batches: Iterator[bytes]) -> Iterator[Batch]:
    """``prepare(batch)`` for each batch, one batch ahead in a thread.

    Reading, numpy and Arrow release the GIL, so the next batch is read and split while the
    model answers the current one (1 000 000 rows: 2.8-3.0 s instead of 3.5-4.1 s)."""

    def next_prepared() -> tuple[Batch] | None:
        data = next(batches, None)
        return None if data is None else (prepare(data),)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="transform-read") as ahead:
        future = ahead.submit(next_prepared)
        while (prepared := future.result()) is not None:
            future = ahead.submit(next_prepared)
            yield prepared[0]


def transform_object(
    store: ObjectStore, transformer: RecordTransformer, bucket: str, key: str, work_dir: Path
) -> ObjectResult:
    """Transform one input object into its ``.out`` object."""
    options = transformer.options
    started = time.perf_counter()
    source = f"s3://{bucket}/{key}"
    relative = storage.relative_key(options.input_uri, key)
    output_uri = f"{options.output_path.rstrip('/')}/{relative}.out"
    body = store.get_object(Bucket=bucket, Key=key)["Body"]
    records_in = records_out = 0
    with tempfile.NamedTemporaryFile(dir=work_dir, suffix=".out", delete=False) as sink:
        if options.split_type == "None":
            data, records_in, records_out = transformer.whole(
                b"".join(_chunks(body, options.compression)), source
            )
            sink.write(data)
        else:
            # up to MaxConcurrentTransforms requests in flight; answers written in order
            pending: collections.deque[Pending] = collections.deque()

            def collect(keep: int) -> None:
                nonlocal records_out
                while len(pending) > keep:
                    output, count = transformer.collect(pending.popleft())
                    sink.write(output)
                    records_out += count

            batches = _one_ahead(
                transformer.prepare, _line_batches(_chunks(body, options.compression))
            )
            while True:
                try:
                    batch = next(batches, None)
                except records.RecordError as error:  # preparing the batch after records_in
                    collect(0)  # a request before it may have failed first
                    raise transformer.record_failure(
                        source, records_in, error.line or 0, error
                    ) from None
                if batch is None:
                    break
                sent = transformer.requests(batch, source, records_in)
                while True:
                    try:
                        request = next(sent, None)
                    except StepFailed:  # a record over MaxPayloadInMB
                        collect(0)
                        raise
                    if request is None:
                        break
                    first, last, payload = request
                    collect(transformer.window - 1)
                    answer = transformer.submit(payload)
                    pending.append(Pending(batch, first, last, records_in, source, answer))
                records_in += len(batch)
            collect(0)
    out_bucket, out_key = parse_s3_uri(output_uri)
    store.upload_file(
        sink.name, out_bucket, out_key, ExtraArgs=transfer_extra_args(options.kms_key_id)
    )
    Path(sink.name).unlink()
    return ObjectResult(
        source,
        output_uri,
        records_in,
        records_out,
        time.perf_counter() - started,
        metric_lines_in(transformer.server.take_printed()),
    )


# ----------------------------------------------------------------------- the job


@dataclass(frozen=True)
class _Credentials:
    """What a worker process needs to act as the parent's session (picklable)."""

    access_key: str | None
    secret_key: str | None
    token: str | None
    region: str | None

    @classmethod
    def of(cls, session: boto3.Session) -> _Credentials:
        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError("the local Transform job has no AWS credentials to give its workers")
        frozen = credentials.get_frozen_credentials()
        return cls(frozen.access_key, frozen.secret_key, frozen.token, session.region_name)

    def session(self) -> boto3.Session:
        return boto3.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.token,
            region_name=self.region,
        )


def transform_objects(
    store: ObjectStore,
    transformer: RecordTransformer,
    objects: list[tuple[str, str]],
    work_dir: Path,
) -> Iterator[ObjectResult]:
    """One instance's objects, in order: one after the other with one request in flight;
    with more, up to ``MaxConcurrentTransforms`` objects at a time (their requests share the
    instance's limit), so that many small objects keep it as busy as one large one. The
    first object that fails (in order) fails them all."""
    if transformer.window == 1 or len(objects) == 1:
        for bucket, key in objects:
            yield transform_object(store, transformer, bucket, key, work_dir)
        return
    workers = min(transformer.window, len(objects))
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="object") as pool:
        futures = [
            pool.submit(transform_object, store, transformer, bucket, key, work_dir)
            for bucket, key in objects
        ]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _worker_run(
    credentials: _Credentials,
    spec: ModelSpec,
    options: TransformOptions,
    objects: list[tuple[str, str]],
    work_dir: str,
    index: int = 0,
    count: int = 1,
) -> list[ObjectResult]:
    """Instance ``index`` of ``count``: on its own share of the CPUs (as each instance has its
    own vCPUs on AWS; the model's container it starts inherits them), load the model once,
    transform its share of the objects."""
    if count > 1:
        os.sched_setaffinity(0, cores.share(index, count))
    s3 = credentials.session().client("s3")
    root = Path(work_dir)
    server = load_model(s3, spec, root)
    transformer = RecordTransformer(server, options)
    try:
        return list(transform_objects(s3, transformer, objects, root))
    finally:
        transformer.close()
        server.stop()


def run_transform(
    arguments: dict[str, Any],
    session: boto3.Session,
    work_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the job described by ``arguments`` (a resolved CreateTransformJob request)."""
    options = TransformOptions.from_arguments(arguments)
    count = instance_count(arguments.get("TransformResources", {}))
    s3 = session.client("s3")
    spec = resolve_model(session.client("sagemaker"), arguments["ModelName"])
    job_environment = arguments.get("Environment") or {}
    if not isinstance(job_environment, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in job_environment.items()
    ):
        raise DefinitionError("Environment must map variable names to strings")
    # the job's variables are set in the container with (and over) the model's
    spec = ModelSpec(spec.model_data_url, {**spec.environment, **job_environment})
    objects = [(bucket, key) for bucket, key, _ in storage.list_objects(s3, options.input_uri)]
    if not objects:
        raise StepFailed(
            f"no input object under {options.input_uri} (when an earlier step writes there, it "
            "wrote nothing)"
        )
    shares = [objects[i::count] for i in range(count)]
    results: list[ObjectResult] = []
    hosts: list[str] = []  # which instance scored each result
    if count == 1:
        server = load_model(s3, spec, work_dir)
        transformer = RecordTransformer(server, options)
        try:
            for result in transform_objects(s3, transformer, objects, work_dir):
                results.append(result)
                hosts.append("algo-1")
                _log_object(log, result)
        finally:
            transformer.close()
            server.stop()
    else:
        context = multiprocessing.get_context("spawn")  # no fork: the caller may run threads
        with concurrent.futures.ProcessPoolExecutor(count, mp_context=context) as pool:
            futures = []
            for index, share in enumerate(shares):
                if share:
                    instance_dir = work_dir / f"algo-{index + 1}"
                    instance_dir.mkdir(parents=True, exist_ok=True)
                    futures.append(
                        (
                            instance_dir.name,
                            pool.submit(
                                _worker_run,
                                _Credentials.of(session),
                                spec,
                                options,
                                share,
                                str(instance_dir),
                                index,
                                count,
                            ),
                        )
                    )
            for host, future in futures:
                for result in future.result():
                    results.append(result)
                    hosts.append(host)
                    _log_object(log, result)
    instances: dict[str, dict[str, int]] = {}
    for host, result in zip(hosts, results, strict=True):
        scored = instances.setdefault(host, {"Objects": 0, "RecordsIn": 0})
        scored["Objects"] += 1
        scored["RecordsIn"] += result.records_in
    return {
        "Objects": [
            {**{k: v for k, v in vars(r).items() if k != "metrics"}, "instance": host}
            for host, r in zip(hosts, results, strict=True)
        ],
        "Instances": instances,
        "RecordsIn": sum(r.records_in for r in results),
        "RecordsOut": sum(r.records_out for r in results),
        "Metrics": [line for r in results for line in r.metrics],
    }


def _log_object(log: Callable[[str], None], result: ObjectResult) -> None:
    rate = result.records_in / result.seconds if result.seconds else 0.0
    log(f"    {result.source} -> {result.output}: {result.records_in} records ({rate:,.0f}/s)")
