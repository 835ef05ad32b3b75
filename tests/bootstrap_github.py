"""GitHub's REST API for the bootstrap's tests: a server on loopback holding repository and
environment variables and environments, answering the calls ``bootstrap.github`` makes as
GitHub documents them (201 on create, 204 on update, 404 for what does not exist)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import serving

REPOSITORY = "my-org/sagemaker-batch-mlops"
TOKEN = "github_pat_test_0123456789"


@dataclass
class GitHubState:
    url: str = ""
    variables: dict[tuple[str | None, str], str] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, str, Any]]:
        return [r for r in self.requests if r[0] != "GET"]


def _handler(state: GitHubState) -> type[BaseHTTPRequestHandler]:
    base = f"/repos/{REPOSITORY}"

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else None
            state.requests.append((self.command, self.path, body))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(401, {"message": "Bad credentials"})
            if not self.path.startswith(base):
                return self._send(404, {"message": "Not Found"})
            status, answer = self._route(self.path.removeprefix(base), body)
            self._send(status, answer)

        def _route(self, path: str, body: Any) -> tuple[int, Any]:
            method = self.command
            found = re.fullmatch(
                r"(?:/environments/([^/]+))?(?:/actions)?/variables(?:/([^/]+))?", path
            )
            if found:
                environment, name = found.groups()
                if environment and environment not in state.environments:
                    return 404, {"message": "Not Found"}
                key = (environment, str(name or (body or {}).get("name")))
                if method == "GET":
                    if key not in state.variables:
                        return 404, {"message": "Not Found"}
                    return 200, {"name": key[1], "value": state.variables[key]}
                if method == "POST" and not name:
                    if key in state.variables:
                        return 409, {"message": "Already exists"}
                    state.variables[key] = body["value"]
                    return 201, {}
                if method == "PATCH" and key in state.variables:
                    state.variables[key] = body["value"]
                    return 204, None
                return 404, {"message": "Not Found"}
            found = re.fullmatch(r"/environments/([^/]+)(/deployment-branch-policies)?", path)
            if found:
                environment, policies = found.groups()
                if policies and method == "POST" and environment in state.environments:
                    state.environments[environment].setdefault("branches", []).append(body)
                    return 200, body
                if method == "PUT" and not policies:
                    state.environments.setdefault(
                        environment, {"name": environment, "protection_rules": []}
                    )
                    state.environments[environment].update(body or {})
                    return 200, state.environments[environment]
                if method == "GET" and environment in state.environments:
                    return 200, state.environments[environment]
            return 404, {"message": "Not Found"}

        def _send(self, status: int, answer: Any) -> None:
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def github_server() -> Iterator[GitHubState]:
    state = GitHubState()
    with serving(_handler(state)) as state.url:
        yield state
