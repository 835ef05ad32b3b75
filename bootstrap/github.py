"""GitHub's REST API for the variables the workflows read and the environments' settings,
with a token read from ``GITHUB_TOKEN`` only: it goes into the Authorization header and
nowhere else (never an argument, a message or a log line)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from common.exit_codes import AWS_ERROR, USAGE_ERROR, CommandFailed

API = "https://api.github.com"
TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Variable:
    """One Actions variable: on the repository (``environment`` None) or an environment."""

    name: str
    value: str
    environment: str | None = None

    @property
    def scope(self) -> str:
        return f"environment {self.environment}" if self.environment else "repository"


class GitHub:
    def __init__(self, repository: str, token: str, api: str | None = None) -> None:
        self.repository = repository
        self._token = token
        self.api = (api or os.environ.get("GITHUB_API_URL") or API).rstrip("/")
        if not self.api.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise CommandFailed(f"GITHUB_API_URL {self.api!r} is not https: fix it", USAGE_ERROR)

    def __repr__(self) -> str:  # never the token
        return f"GitHub({self.repository!r}, api={self.api!r})"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer, or None for 404; any other refusal is a CommandFailed."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - https or loopback, checked above
            f"{self.api}/repos/{self.repository}{path}",
            data=data,
            method=method,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {self._token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as error:
            if error.code == 404 and method == "GET":
                return None
            hint = {
                401: "the token is invalid or expired",
                403: "the token lacks the permission (Variables and Environments: read and "
                "write; Administration: read)",
                404: f"no repository {self.repository} the token can see",
            }.get(error.code, "see GitHub's status")
            raise CommandFailed(
                f"GitHub refused {method} {path} (HTTP {error.code}): {hint}", AWS_ERROR
            ) from None
        except (urllib.error.URLError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise CommandFailed(f"GitHub could not be reached ({reason})", AWS_ERROR) from None
        return json.loads(raw) if raw else {}

    def _base(self, variable: Variable) -> str:
        if variable.environment:
            return f"/environments/{urllib.parse.quote(variable.environment)}/variables"
        return "/actions/variables"

    def current(self, variable: Variable) -> str | None:
        found = self.request("GET", f"{self._base(variable)}/{variable.name}")
        return None if found is None else str(found.get("value"))

    def put(self, variable: Variable, exists: bool) -> None:
        body = {"name": variable.name, "value": variable.value}
        if exists:
            self.request("PATCH", f"{self._base(variable)}/{variable.name}", body)
        else:
            self.request("POST", self._base(variable), body)

    def environment(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", f"/environments/{urllib.parse.quote(name)}")

    def create_environment(self, name: str) -> None:
        """``name`` deploying from ``main`` only (reviewers stay a person's choice: preflight
        checks ``prod`` has them)."""
        policy = {"protected_branches": False, "custom_branch_policies": True}
        self.request("PUT", f"/environments/{name}", {"deployment_branch_policy": policy})
        self.request(
            "POST",
            f"/environments/{name}/deployment-branch-policies",
            {"name": "main", "type": "branch"},
        )


def client(repository: str | None) -> GitHub | None:
    """A client when both a repository and ``GITHUB_TOKEN`` are given, else None (print only)."""
    token = os.environ.get("GITHUB_TOKEN", "")
    if not repository:
        return None
    if not token:
        raise CommandFailed(
            "--github-repository needs GITHUB_TOKEN in the environment (a token with "
            "Variables and Environments read and write): export it, or leave out the repository",
            USAGE_ERROR,
        )
    return GitHub(repository, token)


def sync(github: GitHub | None, variables: list[Variable], dry_run: bool) -> list[str]:
    """Set each variable whose value differs; one line per variable saying what happened."""
    lines = []
    created: dict[str, bool] = {}  # environment -> created by this run
    for variable in variables:
        target = f"{variable.scope}: {variable.name} = {variable.value}"
        if github is None:
            lines.append(f"set {target}")
            continue
        environment = variable.environment
        if environment and environment not in created:
            created[environment] = github.environment(environment) is None
            if created[environment]:
                verb = "would create" if dry_run else "created"
                lines.append(f"{verb} environment {environment} (deploys from main only)")
                if not dry_run:
                    github.create_environment(environment)
        new_environment = bool(environment and created[environment])
        value = None if new_environment and dry_run else github.current(variable)
        if value == variable.value:
            lines.append(f"unchanged {target}")
            continue
        was = "" if value is None else f" (was {value})"
        lines.append(f"{'would set' if dry_run else 'set'} {target}{was}")
        if not dry_run:
            github.put(variable, exists=value is not None)
    return lines
