"""A blue/green update that SageMaker rolls back, in front of the emulator.

moto 5.2.5 has no ``UpdateEndpoint`` and keeps no endpoint's deployment configuration. What
AWS does when an update's alarms fire or its canary fails is documented: traffic goes back to
the old fleet and the endpoint returns to ``InService`` on its old configuration (with a
``FailureReason``). This proxy forwards every request to the emulator unchanged, and adds the
two things AWS does that moto does not: ``DescribeEndpoint`` returns the
``LastDeploymentConfig`` the endpoint was created with (else the provider plans to replace
the endpoint), and ``UpdateEndpoint`` is answered the way AWS does once a rolled-back update
is over: accepted, and nothing about the endpoint changed. That is what Terraform's provider
then reads back with ``DescribeEndpoint``.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.loopback import serving

# hop-by-hop and length headers urllib sets itself
_SKIPPED = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}


# What AWS returns of a creation and moto 5.2.5 drops: Create operation -> (its name field,
# {request field: the field Describe returns it as}); the Describe operation of each
KEPT = {
    "CreateEndpoint": ("EndpointName", {"DeploymentConfig": "LastDeploymentConfig"}),
    "CreateModel": (
        "ModelName",
        {"EnableNetworkIsolation": "EnableNetworkIsolation", "VpcConfig": "VpcConfig"},
    ),
}
READ = {"DescribeEndpoint": ("Endpoint", "EndpointName"), "DescribeModel": ("Model", "ModelName")}
RETURNED = {c.removeprefix("Create"): set(fields.values()) for c, (_, fields) in KEPT.items()}


@dataclass(frozen=True)
class Proxy:
    url: str
    rolled_back: list[str]  # the endpoints whose update was answered as rolled back


@contextmanager
def rolled_back_updates(emulator_url: str, account_id: str) -> Iterator[Proxy]:
    """SageMaker's API from ``emulator_url`` on a loopback URL, every endpoint update rolled
    back (point ``AWS_ENDPOINT_URL_SAGEMAKER`` at ``Proxy.url``)."""
    refused: list[str] = []
    stored: dict[tuple[str, str], dict] = {}  # (kind, name) -> what AWS would return
    target = urllib.parse.urlsplit(emulator_url)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = self.headers.get("X-Amz-Target", "")
            request = json.loads(body) if operation.startswith("SageMaker.") else {}
            if operation == "SageMaker.UpdateEndpoint":
                name = request["EndpointName"]
                refused.append(name)
                arn = f"arn:aws:sagemaker:{self._region()}:{account_id}:endpoint/{name.lower()}"
                self._answer(200, json.dumps({"EndpointArn": arn}).encode(), {})
                return
            # what AWS keeps of a creation and moto drops, by the name it is read back under
            kept = KEPT.get(operation.removeprefix("SageMaker."))
            if kept:
                name_field, fields = kept
                created = {fields[k]: request[k] for k in fields if k in request}
                stored[(operation.split("Create")[-1], request[name_field])] = created
            status, answer, headers = self._forward(body)
            read = READ.get(operation.removeprefix("SageMaker."))
            if read and status == 200:
                kind, name_field = read
                returned = {  # those fields as AWS returns them: absent when not created with
                    k: v for k, v in json.loads(answer).items() if k not in RETURNED[kind]
                }
                returned.update(stored.get((kind, request[name_field]), {}))
                answer = json.dumps(returned).encode()
            self._answer(status, answer, headers)

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

        def _region(self) -> str:
            # SigV4: Credential=<key>/<date>/<region>/<service>/aws4_request
            scope = self.headers.get("Authorization", "").split("Credential=")[-1].split("/")
            return scope[2] if len(scope) > 2 else "us-east-1"

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
        yield Proxy(url, refused)
