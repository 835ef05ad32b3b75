"""Run a Processing step here: inputs from S3 into a tree shaped like ``/opt/ml``, the script
in one subprocess per instance, outputs back to S3 (what ``EndOfJob`` uploads do).

The script runs in the runtime twin of the step's image (``twin``: SageMaker's scikit-learn
image's Python and packages at its versions), so a script that needs another numpy, pandas
or pyarrow than the image has fails here as it would on SageMaker; other images are refused
(``image_uris.local_refusal``).

Sharding follows SageMaker's ``ShardedByS3Key``: the sorted objects are dealt to the
instances in turn, so instance ``i`` of ``n`` gets objects ``i, i+n, i+2n, ...``. Each
instance runs on its own share of this machine's CPUs (``cores``), as each has its own
vCPUs on AWS.

Each instance's storage volume (``VolumeSizeInGB``) holds its downloaded inputs and the
outputs its script writes until the upload: an instance that stores more than its volume
fails the step, after the download or after the script, as the job would fail on SageMaker
with no space left on the device, and nothing is uploaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.image_uris import local_refusal
from local_mode import cores, storage, twin
from local_mode.expressions import DefinitionError
from pipelines.batch_inference import processing_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTAINER_ROOT = "/opt/ml/"
PYTHON_ENTRYPOINT = re.compile(r"python(3(\.\d+)?)?")
STDERR_TAIL_LINES = 20
EXIT_MESSAGE = "/opt/ml/output/message"
EXIT_MESSAGE_BYTES = 1024
UPLOAD_THREADS = 4  # output folders uploaded at once (the big ones are a job's data)
GIB = 2**30  # a volume's GB are GiB (EBS sizes)
NEARLY_FULL = 0.9  # a share of the volume worth a line in the log


class StepFailed(Exception):
    """The step ran and failed; the message is its failure reason. ``metrics`` are the
    metric lines the job printed before failing (on AWS the log's metric filters read them
    whatever the job's status: a gate that stops a run still reports its measures)."""

    def __init__(self, reason: str, metrics: list[dict[str, Any]] | None = None):
        super().__init__(reason)
        self.metrics = metrics or []


def instance_count(resources: dict[str, Any]) -> int:
    """A job's ``InstanceCount`` (ClusterConfig or TransformResources), at least 1."""
    count = int(resources.get("InstanceCount", 1))
    if count < 1:
        raise StepFailed(f"InstanceCount must be at least 1, got {count}")
    return count


def volume_gb(cluster: dict[str, Any]) -> int:
    """A Processing job's ``VolumeSizeInGB``, as AWS accepts it (required, 1 to 16384)."""
    if "VolumeSizeInGB" not in cluster:
        raise DefinitionError(
            "ProcessingResources.ClusterConfig.VolumeSizeInGB is required (AWS refuses a "
            "Processing job without it)"
        )
    name = (
        f"VolumeSizeInGB (the stage file's {processing_settings.SETTING_NAME}, a run's "
        f"{processing_settings.PARAMETER_NAME})"
    )
    problem = processing_settings.volume_problem(cluster["VolumeSizeInGB"], name)
    if problem:
        raise StepFailed(problem)
    return int(cluster["VolumeSizeInGB"])


def stored_bytes(root: Path, container_paths: Iterable[str]) -> int:
    """The bytes of the files under these container folders of one instance (each file
    once), as they take room on its volume: their full size, as S3 sent or will receive it."""
    files = {
        path
        for folder in container_paths
        for path in _local(root, folder).rglob("*")
        if path.is_file() and not path.is_symlink()
    }
    return sum(path.stat().st_size for path in files)


def check_volume(
    roots: dict[str, Path],
    arguments: dict[str, Any],
    volume: int,
    log: Callable[[str], None],
    written: bool,
) -> None:
    """Fail the step when an instance stores more than its volume: its downloaded inputs
    (and, once the script ran, ``written``, its outputs)."""
    inputs = [c["S3Input"]["LocalPath"] for c in arguments.get("ProcessingInputs", [])]
    outputs = [
        o["S3Output"]["LocalPath"]
        for o in arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    ]
    over = []
    for host, root in roots.items():
        downloaded = stored_bytes(root, inputs)
        stored = stored_bytes(root, inputs + outputs) if written else downloaded
        if stored > volume * GIB:
            what = (
                f"{downloaded / GIB:.2f} GiB of inputs, {(stored - downloaded) / GIB:.2f} GiB "
                "of outputs"
                if written
                else "its inputs, before the script started"
            )
            over.append(f"{host} stores {stored / GIB:.2f} GiB on its {volume} GiB volume ({what})")
        elif stored > volume * GIB * NEARLY_FULL:
            log(f"    {host}: {stored / GIB:.2f} GiB stored on its {volume} GiB volume")
    if over:
        raise StepFailed(
            f"{'; '.join(over)}: on SageMaker the job would fail with no space left on the "
            f"device; raise VolumeSizeInGB (the stage file's {processing_settings.SETTING_NAME}, "
            f"a run's {processing_settings.PARAMETER_NAME}) or spread the input over more "
            "instances (ProcessingInstanceCount)"
        )


def host_names(count: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(count)]


def _local(root: Path, container_path: str) -> Path:
    return root / container_path.lstrip("/")


def _map_argument(root: Path, argument: object) -> str:
    """Container paths (``/opt/ml/...``) point into this instance's local tree. Arguments are
    strings, as SageMaker requires: it refuses a Float or Integer parameter reference there
    (``.to_string()`` makes one a string), and so does local mode."""
    if not isinstance(argument, str):
        raise DefinitionError(
            f"container argument {argument!r} is not a string: SageMaker accepts only strings "
            "in ContainerArguments (pass a parameter with .to_string())"
        )
    return str(_local(root, argument)) if argument.startswith(CONTAINER_ROOT) else argument


def run_processing(
    arguments: dict[str, Any],
    s3: S3Client,
    work_dir: Path,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the job described by ``arguments`` (a resolved CreateProcessingJob request):
    prepare each instance, run them side by side, upload their outputs."""
    count = instance_count(arguments["ProcessingResources"]["ClusterConfig"])
    volume = volume_gb(arguments["ProcessingResources"]["ClusterConfig"])
    entrypoint = _python_entrypoint(arguments["AppSpecification"])
    refusal = local_refusal(arguments["AppSpecification"].get("ImageUri"))
    if refusal:
        raise StepFailed(refusal)
    try:
        interpreter = str(twin.python())
    except twin.TwinMissing as error:
        raise StepFailed(str(error)) from None
    hosts = host_names(count)
    roots = {host: (work_dir / host).resolve() for host in hosts}  # the script runs from its root
    for root in roots.values():  # a job starts in an empty container: nothing of an earlier run
        shutil.rmtree(root, ignore_errors=True)  # (its inputs, its outputs) is seen or uploaded
    outputs = arguments.get("ProcessingOutputConfig", {}).get("Outputs", [])
    # the instances' inputs download side by side, as each instance fetches its own on AWS
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(
            pool.map(
                lambda index: _prepare_instance(arguments, s3, roots[hosts[index]], index, hosts),
                range(count),
            )
        )
    for host in hosts:
        for output in outputs:
            _local(roots[host], output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
    log(f"    inputs downloaded in {time.perf_counter() - started:.1f}s")
    check_volume(roots, arguments, volume, log, written=False)
    started = time.perf_counter()
    processes = {
        host: _start_instance(arguments, interpreter, entrypoint, roots[host], host, hosts)
        for host in hosts
    }
    for index, (process, _) in enumerate(processes.values()):
        cores.hold(process.pid, index, count)  # each instance on its own CPUs, as on AWS
    failures = [
        failure
        for host, running in processes.items()
        if (failure := _wait_for_instance(host, running, roots[host], log))
    ]
    metrics = [line for root in roots.values() for line in metric_lines(root / "job.log")]
    if failures:
        raise StepFailed("; ".join(failures), metrics)
    try:  # before anything is uploaded
        check_volume(roots, arguments, volume, log, written=True)
    except StepFailed as error:
        raise StepFailed(str(error), metrics) from None
    log(f"    script ran in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    kms = arguments.get("ProcessingOutputConfig", {}).get("KmsKeyId")
    # every instance's every output uploads side by side (each instance uploads its own at
    # the end of the job on AWS); the URIs keep the definition's order of outputs and hosts
    trees = [(output, root) for output in outputs for root in roots.values()]
    with ThreadPoolExecutor(max_workers=max(1, min(len(trees), UPLOAD_THREADS))) as pool:
        sent = list(
            pool.map(
                lambda tree: storage.upload_tree(
                    s3,
                    _local(tree[1], tree[0]["S3Output"]["LocalPath"]),
                    tree[0]["S3Output"]["S3Uri"],
                    kms,
                ),
                trees,
            )
        )
    uploaded: dict[str, list[str]] = {output["OutputName"]: [] for output in outputs}
    for (output, _), uris in zip(trees, sent, strict=True):
        uploaded[output["OutputName"]].extend(uris)
    log(f"    outputs uploaded in {time.perf_counter() - started:.1f}s")
    return {
        "UploadedObjects": uploaded,
        "Hosts": hosts,
        "Metrics": metrics,
    }


def metric_lines(log: Path) -> list[dict[str, Any]]:
    """The job's metric lines: what CloudWatch Logs metric filters read on AWS (one JSON
    object per line with an ``event`` field), collected here from the same output."""
    if not log.is_file():  # the instance never started
        return []
    return metric_lines_in(log.read_text(encoding="utf-8", errors="replace").splitlines())


def metric_lines_in(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The metric lines among ``lines`` (JSON objects with an ``event`` field)."""
    found: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("{"):
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if isinstance(document, dict) and "event" in document:
                found.append(document)
    return found


def _python_entrypoint(app: dict[str, Any]) -> list[str]:
    """The container's entrypoint, which local mode can run only if it is Python."""
    entrypoint = list(app.get("ContainerEntrypoint") or [])
    if not entrypoint or not PYTHON_ENTRYPOINT.fullmatch(Path(entrypoint[0]).name):
        raise DefinitionError(
            f"local mode runs Python entrypoints only, not {entrypoint[:1] or 'the image default'}"
        )
    return [*entrypoint, *(app.get("ContainerArguments") or [])]


def _start_instance(
    arguments: dict[str, Any],
    interpreter: str,
    command: list[str],
    root: Path,
    host: str,
    hosts: list[str],
) -> tuple[subprocess.Popen, Any]:
    """Start one instance's script with the image's interpreter, its paths under ``root``."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    environment = {
        **inherited,
        "PYTHONNOUSERSITE": "1",
        **(arguments.get("Environment") or {}),
        "SM_CURRENT_HOST": host,
        "SM_HOSTS": json.dumps(hosts),
    }
    log_file = (root / "job.log").open("w")
    process = subprocess.Popen(
        [interpreter, *(_map_argument(root, a) for a in command[1:])],
        cwd=root,
        env=environment,
        stdout=log_file,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, log_file


def _wait_for_instance(
    host: str, running: tuple[subprocess.Popen, Any], root: Path, log: Callable[[str], None]
) -> str | None:
    """Wait for one instance; its failure as a line (with the tail of its stderr), or None."""
    process, log_file = running
    _, stderr = process.communicate()
    log_file.close()
    (root / "job.err").write_text(stderr)
    log(f"    {host}: exit code {process.returncode}")
    if process.returncode == 0:
        return None
    # what the script wrote to /opt/ml/output/message, which SageMaker shows as ExitMessage
    message = _local(root, EXIT_MESSAGE)
    if message.is_file():
        said = message.read_bytes()[:EXIT_MESSAGE_BYTES].decode("utf-8", errors="replace")
        return f"{host} exited with code {process.returncode}: {said.strip()}"
    tail = "\n".join(stderr.strip().splitlines()[-STDERR_TAIL_LINES:])
    return f"{host} exited with code {process.returncode}: {tail}"


def _prepare_instance(
    arguments: dict[str, Any], s3: S3Client, root: Path, index: int, hosts: list[str]
) -> None:
    """Download this instance's share of every input and write its resource config."""
    config = _local(root, "/opt/ml/config/resourceconfig.json")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({"current_host": hosts[index], "hosts": hosts}))
    for channel in arguments.get("ProcessingInputs", []):
        source = channel.get("S3Input")
        if source is None:
            raise DefinitionError(
                f"input {channel.get('InputName')!r}: only S3 inputs run in local mode"
            )
        if source.get("S3DataType", "S3Prefix") != "S3Prefix":
            raise DefinitionError(
                f"input {channel['InputName']!r}: S3DataType {source['S3DataType']} is not "
                "supported in local mode"
            )
        if source.get("S3InputMode", "File") != "File":
            raise DefinitionError(f"input {channel['InputName']!r}: only File mode runs locally")
        objects = storage.list_objects(s3, source["S3Uri"])
        if not objects:
            raise StepFailed(f"input {channel['InputName']!r}: no object under {source['S3Uri']}")
        if source.get("S3DataDistributionType") == "ShardedByS3Key":
            objects = objects[index :: len(hosts)]
        destination = _local(root, source["LocalPath"])
        destination.mkdir(parents=True, exist_ok=True)
        for bucket, key, _ in objects:
            storage.download(
                s3, bucket, key, destination / storage.relative_key(source["S3Uri"], key)
            )
