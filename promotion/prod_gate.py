"""The prod gate that never silently disappears, for deploy.yml and promote.yml.

deploy.yml's ``prod`` job runs in the GitHub environment ``prod`` whose *required reviewers*
are the manual approval. On a private repository of a GitHub Free, Pro or Team plan that
rule cannot exist (docs/deploying-to-aws.md, GitHub setup): the environment has no
protection and ``prod`` would deploy right after pre-prod. So before ``prod``:

    python -m promotion.prod_gate check --environment prod --model-version V \\
        --plan-changes DIGEST --record FILE [--summary FILE] [--output FILE]

reads ``GET /repos/{owner}/{repo}/environments/{environment}`` with the job's token
(``actions: read``) and writes ``required_reviewers=true|false`` to ``--output``: with no
``required_reviewers`` rule (or one naming nobody, or no such environment) the run stops
after the prod plan, the job summary says why and how to promote, and ``--record`` holds
what pre-prod deployed (run, commit, model version, the prod plan's digest) for the run's
``prod-promotion`` artifact. Then a person with write access runs promote.yml:

    python -m promotion.prod_gate verify --run-id N --model-version V [--output FILE]

accepts only the newest deploy.yml run on main, completed successfully at this commit
(``GITHUB_SHA``), whose record names version V: it writes that run's ``model_version`` and
``plan_changes`` to ``--output`` for the prod deployment (which applies only a plan that
changes what the prod plan showed). The artifact is fetched through the API: its download
answers a redirect to storage that is followed without the token.

Settings from the runner's environment: ``GITHUB_TOKEN``, ``GITHUB_REPOSITORY``,
``GITHUB_API_URL`` (https, or http to a loopback host), ``GITHUB_RUN_ID`` and ``GITHUB_SHA``.
Standard library only: the job runs it before (and without) ``make install``.

Exit codes: 0 the gate's answer was written (or the run may be promoted); 1 GitHub could not
be read (fail closed: nothing deploys); 2 bad arguments or settings, or a run that may not
be promoted (one line on stderr saying why).
"""

from __future__ import annotations

import argparse
import http.client
import io
import ipaddress
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUCCESS = 0
GITHUB_ERROR = 1
REFUSED = 2

DEPLOY_WORKFLOW = "deploy.yml"
PROMOTE_WORKFLOW = "promote.yml"
BRANCH = "main"
ARTIFACT = "prod-promotion"
RECORD_FILE = "prod-promotion.json"
API_VERSION = "2022-11-28"
TIMEOUT_SECONDS = 20.0
RECORD_LIMIT = 64 * 1024  # bytes: a record is a few hundred
VERSION = re.compile(r"[1-9][0-9]{0,9}")
RUN_ID = re.compile(r"[1-9][0-9]{0,19}")
DIGEST = re.compile(r"[0-9a-f]{64}")
SHA = re.compile(r"[0-9a-f]{40}")
REPOSITORY = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")


class GateError(Exception):
    """One line for stderr, and the exit code it ends with."""

    def __init__(self, message: str, exit_code: int = REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class GitHub:
    """The repository's REST API, as the job's token sees it."""

    api_url: str
    repository: str
    token: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> GitHub:
        token = environ.get("GITHUB_TOKEN", "")
        repository = environ.get("GITHUB_REPOSITORY", "")
        api_url = environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
        if not token:
            raise GateError("GITHUB_TOKEN is not set: pass the job's token through env")
        if not REPOSITORY.fullmatch(repository):
            raise GateError(f"GITHUB_REPOSITORY must be owner/name, got {repository!r}")
        if not _trusted_url(api_url):
            raise GateError(f"GITHUB_API_URL must be https (http only to loopback): {api_url!r}")
        return cls(api_url, repository, token)

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        """GET ``/repos/{repository}{path}`` as JSON; ``None`` for 404."""
        url = f"{self.api_url}/repos/{self.repository}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = self._open(url, authorized=True)
        if body is None:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise GateError(f"GitHub's answer to GET {path} is not JSON", GITHUB_ERROR) from None

    def download(self, url: str) -> bytes:
        """An artifact's zip: GitHub answers a redirect to storage, followed without the token
        (urllib would resend the Authorization header to the storage host)."""
        if not url.startswith(self.api_url + "/"):
            raise GateError(f"artifact URL {url!r} is not on {self.api_url}", GITHUB_ERROR)
        try:
            self._open(url, authorized=True)
        except _Redirect as redirect:
            if not _trusted_url(redirect.location):
                raise GateError("the artifact's storage URL is not https", GITHUB_ERROR) from None
            body = self._open(redirect.location, authorized=False)
            if body is not None:
                return body
        raise GateError("GitHub gave no download for the artifact", GITHUB_ERROR)

    def _open(self, url: str, authorized: bool) -> bytes | None:
        request = urllib.request.Request(url, method="GET")  # noqa: S310 - _trusted_url checked
        request.add_header("User-Agent", "sagemaker-batch-mlops-prod-gate")
        if authorized:
            request.add_header("Accept", "application/vnd.github+json")
            request.add_header("Authorization", f"Bearer {self.token}")
            request.add_header("X-GitHub-Api-Version", API_VERSION)
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as error:
            location = error.headers.get("Location") if error.headers else None
            error.close()
            if error.code in (301, 302, 303, 307, 308) and location:
                raise _Redirect(location) from None
            if error.code == 404:
                return None
            where = urllib.parse.urlsplit(url).path
            raise GateError(
                f"GitHub answered HTTP {error.code} to GET {where}"
                + (" (the job needs permissions: actions: read)" if error.code == 403 else ""),
                GITHUB_ERROR,
            ) from None
        except (OSError, http.client.HTTPException) as error:
            reason = error.reason if isinstance(error, urllib.error.URLError) else error
            raise GateError(f"could not reach {self.api_url}: {reason}", GITHUB_ERROR) from None


class _Redirect(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _trusted_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return True
    if parts.scheme != "http":
        return False
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------- check


def reviewers_of(github: GitHub, environment: str) -> list[str]:
    """Who the environment's ``required_reviewers`` rule names (users' logins, teams' slugs):
    empty when there is no such rule, or no such environment (GitHub creates it, unprotected,
    when a job first names it)."""
    found = github.get(f"/environments/{urllib.parse.quote(environment, safe='')}")
    if found is None:
        return []
    if not isinstance(found, dict):
        raise GateError(f"GitHub's answer for environment {environment} is not one", GITHUB_ERROR)
    names = []
    for rule in found.get("protection_rules") or []:
        if isinstance(rule, dict) and rule.get("type") == "required_reviewers":
            for reviewer in rule.get("reviewers") or []:
                who = reviewer.get("reviewer") if isinstance(reviewer, dict) else None
                if isinstance(who, dict):
                    names.append(str(who.get("login") or who.get("slug") or who.get("id")))
    return names


def promotion_instructions(repository: str, run_id: str, version: str) -> str:
    """The job summary's how-to-promote, exactly as a person would type it."""
    return (
        f"After reviewing pre-prod's smoke run and the prod plan of this run, promote model "
        f"version {version} with the **{PROMOTE_WORKFLOW}** workflow on `{BRANCH}` "
        f"(Actions -> promote -> Run workflow: deploy_run_id `{run_id}`, model_version "
        f"`{version}`), or:\n\n"
        f"```bash\ngh workflow run {PROMOTE_WORKFLOW} --repo {repository} --ref {BRANCH} "
        f"-f deploy_run_id={run_id} -f model_version={version}\n```\n\n"
        f"It refuses once a newer deploy run exists or `{BRANCH}` has moved on: then deploy "
        f"again. Anyone with write access can run it; to have GitHub require a reviewer "
        f"instead, make the repository public or move it to GitHub Enterprise "
        f"(docs/deploying-from-github.md, The prod gate).\n"
    )


def check(
    github: GitHub, environment: str, version: str, plan_changes: str, run_id: str, sha: str
) -> tuple[bool, dict[str, str], str]:
    """Whether GitHub gates ``environment`` with reviewers, the record of what pre-prod
    deployed, and the job summary's text."""
    if not VERSION.fullmatch(version):
        raise GateError(f"--model-version must be a version number, got {version!r}")
    if not DIGEST.fullmatch(plan_changes):
        raise GateError("--plan-changes must be the prod plan's sha256 digest")
    if not RUN_ID.fullmatch(run_id) or not SHA.fullmatch(sha):
        raise GateError("GITHUB_RUN_ID and GITHUB_SHA must be the runner's")
    record = {"run_id": run_id, "sha": sha, "model_version": version, "plan_changes": plan_changes}
    reviewers = reviewers_of(github, environment)
    if reviewers:
        summary = (
            f"### prod gate: required reviewers\n\nThe `{environment}` environment requires "
            f"a review by {', '.join(reviewers)}: `prod` waits for one of them to approve "
            f"model version {version}.\n"
        )
        return True, record, summary
    summary = (
        f"### prod gate: prod NOT deployed (model version {version})\n\n"
        f"The GitHub environment `{environment}` has no required reviewers rule, so GitHub "
        f"would not stop `prod`: on a private repository, required reviewers need GitHub "
        f"Enterprise (on Free, Pro and Team they exist on public repositories only). This run "
        f"stopped after pre-prod and the prod plan.\n\n"
        + promotion_instructions(github.repository, run_id, version)
    )
    return False, record, summary


# ----------------------------------------------------------------------------- verify


def verify(github: GitHub, run_id: str, version: str, sha: str, ref: str) -> dict[str, str]:
    """The record of deploy run ``run_id`` if it may be promoted to prod as ``version``."""
    if ref != f"refs/heads/{BRANCH}":
        raise GateError(f"{PROMOTE_WORKFLOW} promotes from {BRANCH} only (run it on {BRANCH})")
    if not RUN_ID.fullmatch(run_id):
        raise GateError(f"deploy_run_id must be a run id (a number), got {run_id!r}")
    if not VERSION.fullmatch(version):
        raise GateError(f"model_version must be a version number such as 7, got {version!r}")
    listed = github.get(
        f"/actions/workflows/{DEPLOY_WORKFLOW}/runs", {"branch": BRANCH, "per_page": "1"}
    )
    runs = listed.get("workflow_runs") if isinstance(listed, dict) else None
    if not runs:
        raise GateError(f"{DEPLOY_WORKFLOW} has no run on {BRANCH}")
    newest = runs[0]
    if str(newest.get("id")) != run_id:
        raise GateError(
            f"run {run_id} is not the newest {DEPLOY_WORKFLOW} run on {BRANCH} "
            f"({newest.get('id')} is): pre-prod may hold something else now; promote from "
            f"that run once it has stopped at the gate"
        )
    if (newest.get("status"), newest.get("conclusion")) != ("completed", "success"):
        raise GateError(
            f"run {run_id} is {newest.get('status')}/{newest.get('conclusion')}, not "
            f"completed/success: promote only a run whose pre-prod and prod plan succeeded"
        )
    if newest.get("head_sha") != sha:
        raise GateError(
            f"{BRANCH} has moved since run {run_id} (its commit {newest.get('head_sha')}, now "
            f"{sha}): prod would get code pre-prod did not run; deploy model version "
            f"{version} again (deploy.yml with model_version) and promote that run"
        )
    record = _record(github, run_id)
    if record.get("run_id") != run_id or record.get("sha") != sha:
        raise GateError(f"run {run_id}'s {ARTIFACT} record is not this run's")
    if record.get("model_version") != version:
        raise GateError(
            f"run {run_id} deployed model version {record.get('model_version')} to pre-prod, "
            f"not {version}: promote exactly what was reviewed"
        )
    if not DIGEST.fullmatch(str(record.get("plan_changes"))):
        raise GateError(f"run {run_id}'s {ARTIFACT} record has no plan digest")
    return record


def _record(github: GitHub, run_id: str) -> dict[str, str]:
    listed = github.get(f"/actions/runs/{run_id}/artifacts", {"name": ARTIFACT})
    artifacts = [
        a
        for a in (listed.get("artifacts") or [] if isinstance(listed, dict) else [])
        if isinstance(a, dict) and a.get("name") == ARTIFACT and not a.get("expired")
    ]
    if not artifacts:
        raise GateError(
            f"run {run_id} has no (unexpired) {ARTIFACT} artifact: its prod gate did not "
            f"stop it, or the artifact expired; deploy again"
        )
    archive = github.download(str(artifacts[0].get("archive_download_url")))
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            if zipped.getinfo(RECORD_FILE).file_size > RECORD_LIMIT:
                raise GateError(f"{ARTIFACT}'s {RECORD_FILE} is too large")
            record = json.loads(zipped.read(RECORD_FILE))
    except (zipfile.BadZipFile, KeyError, ValueError):
        raise GateError(f"run {run_id}'s {ARTIFACT} artifact holds no {RECORD_FILE}") from None
    if not isinstance(record, dict):
        raise GateError(f"run {run_id}'s {RECORD_FILE} is not a record")
    return {str(k): str(v) for k, v in record.items()}


# ----------------------------------------------------------------------------- CLI


def _append(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="python -m promotion.prod_gate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    checking = commands.add_parser("check", help="is prod gated by required reviewers?")
    checking.add_argument("--environment", default="prod")
    checking.add_argument("--model-version", required=True)
    checking.add_argument("--plan-changes", required=True)
    checking.add_argument("--record", type=Path, required=True)
    verifying = commands.add_parser("verify", help="may this deploy run be promoted?")
    verifying.add_argument("--run-id", required=True)
    verifying.add_argument("--model-version", required=True)
    for sub in (checking, verifying):
        sub.add_argument("--summary", help="the job summary file ($GITHUB_STEP_SUMMARY)")
        sub.add_argument("--output", help="the step's output file ($GITHUB_OUTPUT)")
    args = parser.parse_args(argv)
    try:
        github = GitHub.from_environment(env)
        sha = env.get("GITHUB_SHA", "")
        if args.command == "check":
            gated, record, summary = check(
                github,
                args.environment,
                args.model_version,
                args.plan_changes,
                env.get("GITHUB_RUN_ID", ""),
                sha,
            )
            args.record.parent.mkdir(parents=True, exist_ok=True)
            args.record.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
            _append(args.summary, summary)
            _append(args.output, f"required_reviewers={str(gated).lower()}\n")
            if not gated:
                print(
                    f"::warning::prod not deployed: environment {args.environment} has no "
                    f"required reviewers; promote with {PROMOTE_WORKFLOW} (job summary)"
                )
        else:
            record = verify(github, args.run_id, args.model_version, sha, env.get("GITHUB_REF", ""))
            _append(
                args.output,
                f"model_version={record['model_version']}\nplan_changes={record['plan_changes']}\n",
            )
            _append(
                args.summary,
                f"### promote: model version {record['model_version']} of deploy run "
                f"{args.run_id} to prod\n",
            )
    except GateError as error:
        print(f"prod_gate: {str(error).replace(github_token(env), '***')}", file=sys.stderr)
        return error.exit_code
    return SUCCESS


def github_token(env: Mapping[str, str]) -> str:
    """The token, to scrub from messages (never empty: ``replace('', ...)`` inserts)."""
    return env.get("GITHUB_TOKEN") or "\0"


if __name__ == "__main__":
    sys.exit(main())
