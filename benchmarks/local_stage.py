"""Local mode at a million rows: a stage's run through the emulator against the same scripts
on local files, measured in one run.

    python -m benchmarks.local_stage [--rows 1000000] [--workdir build/benchmarks/stage]

The demo's setup (emulator, registry, ``build.py --stage preprod``), the demo's generated
rows, then:

* **stage through the emulator**: ``Preprocess`` + ``BatchTransform`` of the deployed
  definition, run by the local executor with every input and output moved through the
  emulator's S3, against the **same two scripts on local files**: the exact
  ``preprocess.py`` command the executor ran (same arguments, environment and downloaded
  input) and the local Transform (``transform_object``, the same options and handlers) on
  Preprocess's local output. Target: at most 1.5x;
* **two Transform instances** on the one large file: Preprocess cuts its output into parts
  for both (``--transform-instances``), each instance runs on its own CPU. Targets: each
  scores 40-60 % of the rows, and the stage takes at most 0.65x of one instance's;
* **two Processing instances**: ``Preprocess`` with ``ProcessingInstanceCount=2`` over two
  input objects (``ShardedByS3Key``: one each) against one instance over the same two
  objects, both through the emulator. Target: at most 0.65x on this 2-core machine.

Each line says ``met`` or ``NOT MET``; docs/benchmarks.md records the numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.transform import LocalDiskStore
from examples import demo
from examples.breast_cancer import data, model
from examples.catalog import EXAMPLES
from local_mode import executor, processing, storage, transform
from local_mode.emulator import environment, running_emulator
from local_mode.serving import ModelServer, extract_artifact
from stage_runtime import runs

STAGE_TARGET = 1.5
TWO_INSTANCES_TARGET = 0.65
TWO_TRANSFORM_TARGET = 0.65


class Captured:
    """What the executor's jobs were asked to do, kept for the local-files baseline."""

    def __init__(self) -> None:
        self.processing: dict[str, Any] = {}
        self.transform: dict[str, Any] = {}
        self.commands: list[tuple[list[str], Path, dict[str, str]]] = []

    def __enter__(self) -> Captured:
        self._run_processing = executor.run_processing
        self._run_transform = executor.run_transform
        self._popen = processing.subprocess.Popen

        def run_processing(arguments: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            # Preprocess's job, not Publish's (the third step, Processing too)
            entrypoint = arguments["AppSpecification"]["ContainerEntrypoint"]
            if any(str(part).endswith("preprocess.py") for part in entrypoint):
                self.processing = arguments
            return self._run_processing(arguments, *args, **kwargs)

        def run_transform(arguments: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            self.transform = arguments
            return self._run_transform(arguments, *args, **kwargs)

        def popen(command: list[str], *args: Any, **kwargs: Any) -> Any:
            # the module is everyone's: only the Processing script's start is the one replayed
            # (the model's container and its virtualenv are started through it too)
            if any(str(part).endswith("preprocess.py") for part in command):
                self.commands.append((list(command), Path(kwargs["cwd"]), dict(kwargs["env"])))
            return self._popen(command, *args, **kwargs)

        executor.run_processing = run_processing
        executor.run_transform = run_transform
        processing.subprocess.Popen = popen  # type: ignore[assignment,misc]
        return self

    def __exit__(self, *_: object) -> None:
        executor.run_processing = self._run_processing
        executor.run_transform = self._run_transform
        processing.subprocess.Popen = self._popen  # type: ignore[misc]


STAGE_STEPS = ("Preprocess", "BatchTransform")  # what the local-files replay runs too


def seconds(record: dict[str, Any], step: str | None = None) -> float:
    """One step's seconds, or the stage's: Preprocess and BatchTransform (Publish, the
    third step, has no local-files counterpart here)."""
    if record["PipelineExecutionStatus"] != "Succeeded":
        raise RuntimeError(f"the run failed: {record.get('FailureReason')}")
    steps = STAGE_STEPS if step is None else (step,)
    return sum(s["DurationSeconds"] for s in record["Steps"] if s["StepName"] in steps)


def run_stage(
    aws: Any,
    tfvars: dict[str, Any],
    folder: str,
    instances: int,
    workdir: Path,
    transform_instances: int = 1,
    one_object: bool = False,
) -> dict[str, Any]:
    """The deployed definition on ``s3://<bucket>/<input>/<folder>/``, through the emulator
    (``one_object``: Preprocess as before #34, one process writing one inference object per
    input file)."""
    s3 = aws.client("s3", "preprod")
    bucket, prefix = storage.parse_s3_uri(tfvars["input_data_url"])
    definition = executor.load_definition(
        f"s3://{tfvars['artifacts_bucket']}/{tfvars['pipeline_definition_s3_key']}", s3
    )
    parameters = runs.schedule_parameters(
        tfvars, f"s3://{bucket}/{prefix.rstrip('/')}/{folder}/"
    ) | {
        "ProcessingInstanceCount": str(instances),
        "TransformInstanceCount": str(transform_instances),
    }
    if one_object:
        (step,) = [s for s in definition["Steps"] if s["Name"] == "Preprocess"]
        arguments = step["Arguments"]["AppSpecification"]["ContainerArguments"]
        for option, value in (("--transform-instances", "1"), ("--transform-concurrency", "1")):
            arguments[arguments.index(option) + 1] = value
        arguments += ["--workers", "1"]
    return executor.execute(
        definition,
        parameters,
        pipeline_name=tfvars["pipeline_name"],
        session=aws.account("preprod"),
        work_dir=workdir,
        log=_timings,
    )


def _timings(line: str) -> None:
    """The executor's lines that say where a step's time went (transfers, script, step)."""
    if any(word in line for word in ("downloaded in", "ran in", "uploaded in", "succeeded in")):
        print(line, flush=True)


def scripts_on_local_files(captured: Captured, workdir: Path, archive: Path) -> tuple[float, float]:
    """The same ``preprocess.py`` command on its downloaded input, then the local Transform
    (model loaded from the local artifact) on what it wrote, no S3 at all."""
    ((command, root, env),) = captured.commands
    outputs = captured.processing["ProcessingOutputConfig"]["Outputs"]
    for output in outputs:  # what the first run wrote
        local = root / output["S3Output"]["LocalPath"].lstrip("/")
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    preprocess_seconds = time.perf_counter() - started

    options = transform.TransformOptions.from_arguments(captured.transform)
    (inference,) = [o for o in outputs if o["S3Output"]["S3Uri"] == options.input_uri.rstrip("/")]
    written = root / inference["S3Output"]["LocalPath"].lstrip("/")
    store_root = workdir / "store"
    _, input_prefix = storage.parse_s3_uri(options.input_uri)
    shutil.rmtree(store_root, ignore_errors=True)
    keys = []
    for path in sorted(p for p in written.rglob("*") if p.is_file()):
        key = f"{input_prefix.rstrip('/')}/{path.relative_to(written).as_posix()}"
        (store_root / key).parent.mkdir(parents=True, exist_ok=True)
        os.link(path, store_root / key)  # the same bytes, no copy
        keys.append(key)
    started = time.perf_counter()
    server = ModelServer(
        extract_artifact(archive, workdir / "model"), model.container_environment()
    )
    runner = transform.RecordTransformer(server, options)
    for key in keys:
        transform.transform_object(LocalDiskStore(store_root), runner, "local", key, workdir)
    return preprocess_seconds, time.perf_counter() - started


def split_in_two(path: Path, workdir: Path) -> tuple[Path, Path]:
    """The same rows as two CSV files of about half the bytes each, both with the header."""
    halves = (workdir / "part-0.csv", workdir / "part-1.csv")
    with path.open("rb") as source:
        header = source.readline()
        middle = path.stat().st_size // 2
        with halves[0].open("wb") as first:
            first.write(header)
            while source.tell() < middle and (chunk := source.read(min(1 << 24, middle))):
                first.write(chunk)
            first.write(source.readline())  # to the end of the row it stopped in
        with halves[1].open("wb") as second:
            second.write(header)
            shutil.copyfileobj(source, second, 1 << 24)
    return halves


def transform_shares(record: dict[str, Any]) -> dict[str, float]:
    """Each Transform instance's share of the rows it scored."""
    (step,) = [s for s in record["Steps"] if s["StepName"] == "BatchTransform"]
    instances = step["Outcome"]["Instances"]
    total = sum(i["RecordsIn"] for i in instances.values())
    return {host: i["RecordsIn"] / total for host, i in instances.items()}


def verdict(ratio: float, target: float) -> str:
    return "met" if ratio <= target else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.local_stage", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=Path("build/benchmarks/stage"))
    args = parser.parse_args(argv)
    workdir = args.workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with running_emulator() as aws, environment(aws.environment()):
        example = EXAMPLES["breast-cancer"]  # the one its local scripts replay
        dev_bucket = demo._base_resources(aws, example)
        demo.register_model(aws, example, dev_bucket, workdir)
        tfvars = demo.deploy("preprod", example, workdir)
        demo.create_sagemaker_model(aws, "preprod", tfvars)
        generated = data.generate(workdir / "input.csv", args.rows)
        s3 = aws.client("s3", "preprod")
        bucket, prefix = storage.parse_s3_uri(tfvars["input_data_url"])
        base = prefix.rstrip("/")
        s3.upload_file(str(generated.path), bucket, f"{base}/one/batch-0001.csv")

        with Captured() as captured:
            record = run_stage(aws, tfvars, "one", 1, workdir / "stage")
        through_emulator = seconds(record)
        local_preprocess, local_transform = scripts_on_local_files(
            captured, workdir, workdir / "model.tar.gz"
        )
        on_local_files = local_preprocess + local_transform
        ratio = through_emulator / on_local_files
        print(
            f"stage at {args.rows:,} rows: through the emulator {through_emulator:.1f}s "
            f"(Preprocess {seconds(record, 'Preprocess'):.1f}s, BatchTransform "
            f"{seconds(record, 'BatchTransform'):.1f}s), the scripts on local files "
            f"{on_local_files:.1f}s ({local_preprocess:.1f}s, {local_transform:.1f}s): "
            f"{ratio:.2f}x (target <= {STAGE_TARGET}x: {verdict(ratio, STAGE_TARGET)})",
            flush=True,
        )

        # the one large file again, scored by two Transform instances: Preprocess cuts its
        # output into parts for both, each instance on its own CPU
        fleet = run_stage(aws, tfvars, "one", 1, workdir / "two-transform", transform_instances=2)
        shares = transform_shares(fleet)
        ratio = seconds(fleet) / through_emulator
        met = ratio <= TWO_TRANSFORM_TARGET and all(0.4 <= v <= 0.6 for v in shares.values())
        print(
            f"one input of {args.rows:,} rows, two Transform instances: rows scored "
            + ", ".join(f"{host} {share:.0%}" for host, share in sorted(shares.items()))
            + f" (target 40-60 % each); stage {seconds(fleet):.1f}s vs {through_emulator:.1f}s "
            f"with one (BatchTransform {seconds(fleet, 'BatchTransform'):.1f}s vs "
            f"{seconds(record, 'BatchTransform'):.1f}s): {ratio:.2f}x (target <= "
            f"{TWO_TRANSFORM_TARGET}x): {'met' if met else 'NOT MET'}",
            flush=True,
        )
        # what the parts buy: the same two instances when Preprocess writes one object
        before = run_stage(
            aws, tfvars, "one", 1, workdir / "one-object", transform_instances=2, one_object=True
        )
        ratio = seconds(fleet, "BatchTransform") / seconds(before, "BatchTransform")
        print(
            "two Transform instances, the same input as one inference object (before #34): rows "
            "scored "
            + ", ".join(
                f"{host} {share:.0%}" for host, share in sorted(transform_shares(before).items())
            )
            + f"; BatchTransform {seconds(before, 'BatchTransform'):.1f}s, with the parts "
            f"{seconds(fleet, 'BatchTransform'):.1f}s: {ratio:.2f}x",
            flush=True,
        )

        for index, part in enumerate(split_in_two(generated.path, workdir)):
            s3.upload_file(str(part), bucket, f"{base}/two/part-{index}.csv")
        one = seconds(run_stage(aws, tfvars, "two", 1, workdir / "one-instance"), "Preprocess")
        two = seconds(run_stage(aws, tfvars, "two", 2, workdir / "two-instances"), "Preprocess")
        ratio = two / one
        print(
            f"Preprocess over two objects: two instances {two:.1f}s, one instance {one:.1f}s: "
            f"{ratio:.2f}x (target <= {TWO_INSTANCES_TARGET}x: "
            f"{verdict(ratio, TWO_INSTANCES_TARGET)})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
