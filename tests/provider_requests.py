"""What Terraform's AWS provider really sends, checked against botocore's service models.

The emulator accepts requests AWS refuses (empty strings, over-long names, bad enums), so a
green apply proves wiring only. With ``TF_LOG_PROVIDER=DEBUG`` the provider logs each
request's body; the JSON-protocol ones (``X-Amz-Target``) are parsed here and validated the
way AWS's front end would: botocore's own validator (required members, types, minimums)
plus the maximums, patterns and enums the model declares.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import regex  # Java-style classes such as \p{L}, which re lacks
from botocore.model import ListShape, MapShape, Shape, StringShape, StructureShape
from botocore.validate import ParamValidator

# X-Amz-Target prefix -> botocore service name, for the services the roots use
TARGET_PREFIXES = {
    "SageMaker": "sagemaker",
    "AWSEvents": "events",
    "AmazonSQS": "sqs",
    "TrentService": "kms",
    "AmazonSSM": "ssm",
    "Logs_20140328": "logs",
    "secretsmanager": "secretsmanager",
    "AmazonEC2ContainerRegistry_V20150921": "ecr",
    "AWSGlue": "glue",
}
# hclog prints an entry's fields in any order; a multi-line value (the body) on its own lines
_TARGET = re.compile(r"x_amz_target=(?P<target>[\w.]+)")
_BODY = re.compile(r"http\.request\.body=\n  \| (?P<body>[^\n]*)")


@dataclass(frozen=True)
class Request:
    service: str
    operation: str
    body: dict[str, Any]


def logged_requests(log: Path) -> list[Request]:
    """Every JSON-protocol request in a provider debug log (``TF_LOG_PATH``)."""
    requests = []
    # one log entry per line group; split on the timestamps that start entries
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\dT)", log.read_text(errors="replace")):
        target, body = _TARGET.search(entry), _BODY.search(entry)
        if "HTTP Request Sent" not in entry or not target:
            continue
        prefix, operation = target["target"].rsplit(".", 1)
        if prefix not in TARGET_PREFIXES:
            raise AssertionError(f"no botocore service known for X-Amz-Target {prefix!r}")
        text = body["body"].strip() if body else ""
        requests.append(
            Request(TARGET_PREFIXES[prefix], operation, json.loads(text) if text else {})
        )
    # a request logged in pieces (over 64 KiB: split_json_entries) is checked too
    for fields in split_json_entries(log.read_text(errors="replace")):
        target = fields.get("http.request.header.x_amz_target")
        if fields.get("@message") != "HTTP Request Sent" or not isinstance(target, str):
            continue
        prefix, operation = target.rsplit(".", 1)
        if prefix not in TARGET_PREFIXES:
            raise AssertionError(f"no botocore service known for X-Amz-Target {prefix!r}")
        text = str(fields.get("http.request.body") or "").strip()
        document = json.JSONDecoder().raw_decode(text)[0] if text else {}
        requests.append(Request(TARGET_PREFIXES[prefix], operation, document))
    return requests


_METHOD = re.compile(r"rpc\.method=(?P<method>\w+)")
_SERVICE = re.compile(r"rpc\.service=(?P<service>\w+)")


def rest_request_bodies(log: Path, service: str, operation: str) -> list[dict[str, Any]]:
    """The JSON bodies of a REST-protocol operation (no ``X-Amz-Target``, e.g. Lambda's
    ``CreateFunction``) in a provider debug log: not validated, read for what they carry."""
    found = []
    text = log.read_text(errors="replace")
    for entry in re.split(r"\n(?=\d{4}-\d\d-\d\dT)", text):
        method, name, body = _METHOD.search(entry), _SERVICE.search(entry), _BODY.search(entry)
        if "HTTP Request Sent" not in entry or not (method and name and body):
            continue
        if (name["service"], method["method"]) == (service, operation):
            found.append(json.loads(body["body"]))
    for fields in split_json_entries(text):
        if fields.get("@message") != "HTTP Request Sent":
            continue
        if (fields.get("rpc.service"), fields.get("rpc.method")) == (service, operation):
            # the SDK's logger may append "\n[truncated...]" after a long body's JSON
            body, _ = json.JSONDecoder().raw_decode(fields["http.request.body"])
            found.append(body)
    return found


# an entry's prefix in Terraform's log, before the provider's own text
_PREFIX = re.compile(r"^\d{4}-\d\d-\d\dT\S+ \[\w+\] provider\.[^:]+: ", re.M)


def split_json_entries(text: str) -> list[dict[str, Any]]:
    """The provider's log lines longer than 64 KiB, joined and parsed.

    Terraform reads a plugin's log line by line in pieces of at most 64 KiB and logs each
    piece under its own prefix; a piece of the provider's JSON line is not JSON, so Terraform
    logs it raw instead of as fields (a request whose body is a Lambda zip of 48 KB, 65 KB
    in base64, is one). Each raw ``{"@`` piece is joined with the pieces after it until it
    parses."""
    pieces = [(match.end(), match) for match in _PREFIX.finditer(text)]
    found = []
    for index, (start, _) in enumerate(pieces):
        if not text.startswith('{"@', start):
            continue
        joined = ""
        for later in range(index, min(index + 64, len(pieces))):
            end = pieces[later + 1][1].start() - 1 if later + 1 < len(pieces) else len(text)
            joined += text[pieces[later][0] : end]
            try:
                document = json.loads(joined)
            except ValueError:
                continue
            if isinstance(document, dict):
                found.append(document)
            break
    return found


_session = botocore.session.get_session()


def problems(request: Request) -> list[str]:
    """What AWS's model says is wrong with ``request`` (empty when it would be accepted)."""
    model = _session.get_service_model(request.service)
    shape = model.operation_model(request.operation).input_shape
    found = []
    if shape is not None:
        report = ParamValidator().validate(request.body, shape)
        if report.has_errors():
            found.append(report.generate_report())
        found.extend(_limits(request.body, shape, request.operation))
    return [f"{request.service}.{request.operation}: {p}" for p in found]


def _limits(value: Any, shape: Shape, path: str) -> list[str]:
    """The maximums, patterns and enums botocore's validator leaves out (it checks a
    number's minimum, not its maximum)."""
    found = []
    meta = shape.metadata
    if isinstance(shape, StructureShape) and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                found += _limits(value[name], member, f"{path}.{name}")
    elif isinstance(shape, ListShape) and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path} has {len(value)} items, at most {meta['max']} allowed")
        for i, item in enumerate(value):
            found += _limits(item, shape.member, f"{path}[{i}]")
    elif isinstance(shape, MapShape) and isinstance(value, dict):
        for key, item in value.items():
            found += _limits(key, shape.key, f"{path} key")
            found += _limits(item, shape.value, f"{path}[{key}]")
    elif isinstance(shape, StringShape) and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            found.append(f"{path} is {len(value)} characters, at most {meta['max']} allowed")
        if "pattern" in meta and not regex.fullmatch(
            python_pattern(meta["pattern"]), value, regex.DOTALL
        ):
            found.append(f"{path}={value[:80]!r} does not match {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            found.append(f"{path}={value!r} is not one of {shape.enum}")
    elif _is_number(value) and "max" in meta and value > meta["max"]:
        found.append(f"{path}={value} is over the maximum {meta['max']}")
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Java's regexes see UTF-16: Glue's patterns give the supplementary characters as the range
# of their surrogate pairs, which a regex over code points reads as a reversed range
_SURROGATE_PAIRS = "\\uD800\\uDC00-\\uDBFF\\uDFFF"


def python_pattern(pattern: str) -> str:
    """A model's pattern as Python's regex reads the same strings (code points)."""
    return pattern.replace(_SURROGATE_PAIRS, "\\U00010000-\\U0010FFFF")


def refused_requests(log: Path) -> list[str]:
    """Every problem of every JSON-protocol request in ``log``: empty when AWS's model
    would accept them all."""
    return [problem for request in logged_requests(log) for problem in problems(request)]
