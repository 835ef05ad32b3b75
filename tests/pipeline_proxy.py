"""SageMaker Pipelines' executions that run, in front of the emulator.

moto 5.2.5 answers ``StartPipelineExecution`` with an execution that is ``Succeeded`` at once:
no step runs, nothing is written. Code that starts a deployed pipeline and then reads what
its run wrote (the shadow run in the deploy workflow's plan job) cannot be run against that.
This proxy forwards every SageMaker request to the emulator unchanged, and adds what
SageMaker does and moto does not: the execution moto accepted is run, before the answer,
by the local executor (``local_mode/executor.py``, as local mode runs the deployed
definition), with the pipeline's definition as ``DescribePipeline`` returns it, the
request's parameters and moto's execution id (so the run writes where SageMaker's would);
``DescribePipelineExecution`` then reports the local run's status and failure reason.
Create the pipeline from the definition's text: moto describes one made from an S3 location
with the Python repr of its definition.

Running it before answering keeps the caller's first ``DescribePipelineExecution`` final, so
no poll interval is waited for; the runs a caller starts at once must together take less than
botocore's read timeout (60 s).
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3

from local_mode import executor
from tests.loopback import serving

# hop-by-hop and length headers the proxy sets itself
_SKIPPED = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


@dataclass
class Proxy:
    url: str
    # execution ARN (moto's) -> the local executor's record of its run
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)


@contextmanager
def executing_pipelines(
    emulator_url: str, session: boto3.Session, work_dir: Path
) -> Iterator[Proxy]:
    """SageMaker's API from ``emulator_url`` on a loopback URL (point
    ``AWS_ENDPOINT_URL_SAGEMAKER`` at ``Proxy.url``); each started execution is run by the
    local executor with ``session``'s credentials (the pipeline role's, on AWS), its jobs
    working under ``work_dir``."""
    target = urllib.parse.urlsplit(emulator_url)
    sagemaker = session.client("sagemaker", endpoint_url=emulator_url)
    lock = threading.Lock()
    # one execution at a time: executions started at once (a shadow run's days) would share
    # this process's in-process model serving; SageMaker's run side by side
    running = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = self.headers.get("X-Amz-Target", "").removeprefix("SageMaker.")
            status, answer, headers = self._forward(body)
            if status == 200 and operation == "StartPipelineExecution":
                self._run(json.loads(body), json.loads(answer)["PipelineExecutionArn"])
            elif status == 200 and operation == "DescribePipelineExecution":
                described = json.loads(answer)
                with lock:
                    record = proxy.runs.get(described["PipelineExecutionArn"])
                if record is not None:
                    described["PipelineExecutionStatus"] = record["PipelineExecutionStatus"]
                    if record.get("FailureReason"):
                        described["FailureReason"] = record["FailureReason"]
                    answer = json.dumps(described).encode()
            self._answer(status, answer, headers)

        def _run(self, request: dict[str, Any], arn: str) -> None:
            pipeline = sagemaker.describe_pipeline(PipelineName=request["PipelineName"])
            execution_id = arn.rsplit("/", 1)[-1]
            with running:
                record = executor.execute(
                    json.loads(pipeline["PipelineDefinition"]),
                    {p["Name"]: p["Value"] for p in request.get("PipelineParameters", [])},
                    pipeline_name=pipeline["PipelineName"],
                    session=session,
                    work_dir=work_dir / execution_id,
                    execution_id=execution_id,
                    log=lambda line: None,
                )
            with lock:
                proxy.runs[arn] = record

        def _forward(self, body: bytes) -> tuple[int, bytes, dict[str, str]]:
            upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=60)
            try:
                upstream.request(
                    "POST",
                    self.path,
                    body=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() not in _SKIPPED},
                )
                response = upstream.getresponse()
                return response.status, response.read(), dict(response.getheaders())
            finally:
                upstream.close()

        def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for key, value in headers.items():
                if key.lower() not in _SKIPPED:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    with serving(Handler) as url:
        proxy = Proxy(url)
        yield proxy
