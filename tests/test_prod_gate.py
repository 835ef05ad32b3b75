"""The prod gate (promotion/prod_gate.py) against a GitHub API on a loopback HTTP server:
deploy.yml's check of the prod environment's reviewer rule, and promote.yml's verification
of the deploy run it promotes, through the record the first hands the second."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from promotion import prod_gate
from tests.loopback import serving

REPO = Path(__file__).resolve().parents[1]
TOKEN = "ghs_TestTokenValueThatMustNeverBePrinted0123"
REPOSITORY = "acme/churn-mlops"
RUN_ID = "4242"
SHA = "a" * 40
DIGEST = "0123456789abcdef" * 4
PREFIX = f"/repos/{REPOSITORY}"


@dataclass
class GitHub:
    """Answers by path (without the query): (status, headers, body); unknown paths 404."""

    url: str = ""
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)  # (path?query, auth)

    def answer(self, path: str, body: Any, status: int = 200, **headers: str) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[path] = (status, headers, raw)


@pytest.fixture
def github() -> Iterator[GitHub]:
    state = GitHub()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.seen.append((self.path, self.headers.get("Authorization")))
            status, headers, body = state.answers.get(self.path.split("?")[0], (404, {}, b"{}"))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value.replace("{url}", state.url))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as state.url:
        yield state


def runner_env(github: GitHub, **extra: str) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_API_URL": github.url,
        "GITHUB_RUN_ID": RUN_ID,
        "GITHUB_SHA": SHA,
        "GITHUB_REF": "refs/heads/main",
        **extra,
    }


def run_check(github: GitHub, tmp_path: Path, **env: str) -> tuple[int, dict[str, str]]:
    """``check`` as deploy.yml's gate job runs it; its exit code and the step's outputs."""
    (tmp_path / "output").write_text("")
    code = prod_gate.main(
        ["check", "--environment", "prod", "--model-version", "7", "--plan-changes", DIGEST,
         "--record", str(tmp_path / "record" / "prod-promotion.json"),
         "--summary", str(tmp_path / "summary"), "--output", str(tmp_path / "output")],
        runner_env(github, **env),
    )  # fmt: skip
    return code, outputs(tmp_path / "output")


def outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def environment(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"name": "prod", "protection_rules": list(rules), "can_admins_bypass": True}


def reviewers(*logins: str) -> dict[str, Any]:
    people = [{"type": "User", "reviewer": {"login": login, "id": 1}} for login in logins]
    return {"id": 1, "type": "required_reviewers", "prevent_self_review": True, "reviewers": people}


BRANCHES = {"id": 2, "type": "branch_policy"}
WAIT = {"id": 3, "type": "wait_timer", "wait_timer": 5}


# ----------------------------------------------------------------------------- check


def test_a_reviewer_rule_lets_prod_wait_for_its_approval(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.answer(f"{PREFIX}/environments/prod", environment(BRANCHES, reviewers("lead")))
    code, out = run_check(github, tmp_path)
    assert code == 0 and out == {"required_reviewers": "true"}
    assert "review by lead" in (tmp_path / "summary").read_text()
    assert github.seen == [(f"{PREFIX}/environments/prod", f"Bearer {TOKEN}")]
    assert "::warning::" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(environment(BRANCHES, WAIT), id="branch-policy-and-wait-timer-only"),
        pytest.param(environment(), id="no-rules"),
        pytest.param(environment(reviewers()), id="a-reviewer-rule-naming-nobody"),
        pytest.param(None, id="no-such-environment"),
    ],
)
def test_without_a_reviewer_rule_the_run_stops_before_prod_saying_how_to_promote(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], answer: Any
) -> None:
    if answer is not None:
        github.answer(f"{PREFIX}/environments/prod", answer)
    code, out = run_check(github, tmp_path)
    assert code == 0 and out == {"required_reviewers": "false"}
    summary = (tmp_path / "summary").read_text()
    assert "prod NOT deployed (model version 7)" in summary
    assert "no required reviewers rule" in summary and "GitHub Enterprise" in summary
    command = (
        f"gh workflow run promote.yml --repo {REPOSITORY} --ref main "
        f"-f deploy_run_id={RUN_ID} -f model_version=7"
    )
    assert command in summary
    assert capsys.readouterr().out.startswith("::warning::prod not deployed")
    record = json.loads((tmp_path / "record" / "prod-promotion.json").read_text())
    assert record == {"run_id": RUN_ID, "sha": SHA, "model_version": "7", "plan_changes": DIGEST}


@pytest.mark.parametrize("status", [403, 500])
def test_an_unreadable_environment_fails_closed_without_the_token(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], status: int
) -> None:
    github.answer(f"{PREFIX}/environments/prod", {"message": TOKEN}, status=status)
    code, out = run_check(github, tmp_path)
    assert code == prod_gate.GITHUB_ERROR and out == {}  # prod needs the output: it is skipped
    err = capsys.readouterr().err
    assert f"HTTP {status}" in err and TOKEN not in err
    assert ("actions: read" in err) == (status == 403)


@pytest.mark.parametrize(
    ("version", "digest", "env", "error"),
    [
        ("7; curl x | sh", DIGEST, {}, "--model-version"),
        ("7", "not-a-digest", {}, "--plan-changes"),
        ("7", DIGEST, {"GITHUB_TOKEN": ""}, "GITHUB_TOKEN"),
        ("7", DIGEST, {"GITHUB_API_URL": "http://example.com"}, "GITHUB_API_URL"),
    ],
)
def test_check_refuses_bad_arguments_before_asking_github(
    github: GitHub, capsys: pytest.CaptureFixture[str], version: str, digest: str,
    env: dict[str, str], error: str, tmp_path: Path,
) -> None:  # fmt: skip
    code = prod_gate.main(
        ["check", "--model-version", version, "--plan-changes", digest,
         "--record", str(tmp_path / "r.json")],
        runner_env(github, **env),
    )  # fmt: skip
    assert code == prod_gate.REFUSED and github.seen == []
    assert error in capsys.readouterr().err


# ----------------------------------------------------------------------------- verify


def deploy_run(**changes: Any) -> dict[str, Any]:
    run = {"id": int(RUN_ID), "head_sha": SHA, "head_branch": "main"}
    return {**run, "status": "completed", "conclusion": "success", **changes}


def zipped(record: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("prod-promotion.json", record)
    return buffer.getvalue()


def serve_deploy_run(github: GitHub, record: bytes | None, *newest: dict[str, Any]) -> None:
    """GitHub's view of the deploy run: the newest runs of deploy.yml on main, its artifact,
    whose download redirects to storage (here the same server, at another path)."""
    runs = list(newest) or [deploy_run()]
    github.answer(f"{PREFIX}/actions/workflows/deploy.yml/runs", {"workflow_runs": runs})
    download = f"{PREFIX}/actions/artifacts/9/zip"
    listed = [{"id": 9, "name": "prod-promotion", "expired": False,
               "archive_download_url": f"{github.url}{download}"}]  # fmt: skip
    github.answer(f"{PREFIX}/actions/runs/{RUN_ID}/artifacts", {"artifacts": listed})
    github.answer(download, b"", status=302, Location="{url}/storage/signed.zip")
    if record is not None:
        github.answer("/storage/signed.zip", zipped(record))


def run_verify(github: GitHub, tmp_path: Path, version: str = "7", **env: str) -> int:
    (tmp_path / "output").write_text("")
    return prod_gate.main(
        ["verify", "--run-id", env.pop("run_id", RUN_ID), "--model-version", version,
         "--output", str(tmp_path / "output")],
        runner_env(github, **env),
    )  # fmt: skip


def test_promote_deploys_what_the_stopped_run_recorded(github: GitHub, tmp_path: Path) -> None:
    """The record check wrote is the one verify reads (the artifact in between)."""
    github.answer(f"{PREFIX}/environments/prod", environment(BRANCHES))
    assert run_check(github, tmp_path)[1] == {"required_reviewers": "false"}
    serve_deploy_run(github, (tmp_path / "record" / "prod-promotion.json").read_bytes())
    github.seen.clear()

    assert run_verify(github, tmp_path) == 0
    assert outputs(tmp_path / "output") == {"model_version": "7", "plan_changes": DIGEST}
    authorizations = dict(github.seen)
    assert authorizations[f"{PREFIX}/actions/workflows/deploy.yml/runs?branch=main&per_page=1"]
    assert authorizations[f"{PREFIX}/actions/artifacts/9/zip"] == f"Bearer {TOKEN}"
    assert authorizations["/storage/signed.zip"] is None, "the token never goes to storage"


RECORD = {"run_id": RUN_ID, "sha": SHA, "model_version": "7", "plan_changes": DIGEST}


@pytest.mark.parametrize(
    ("newest", "record", "version", "env", "error"),
    [
        ([deploy_run(id=4243), deploy_run()], RECORD, "7", {}, "not the newest"),
        ([deploy_run(conclusion="failure")], RECORD, "7", {}, "completed/success"),
        ([deploy_run(status="in_progress", conclusion=None)], RECORD, "7", {}, "in_progress"),
        ([deploy_run(head_sha="b" * 40)], RECORD, "7", {}, "main has moved"),
        ([deploy_run()], RECORD, "8", {}, "deployed model version 7 to pre-prod, not 8"),
        ([deploy_run()], {**RECORD, "sha": "c" * 40}, "7", {}, "is not this run's"),
        ([deploy_run()], {**RECORD, "plan_changes": ""}, "7", {}, "no plan digest"),
        ([deploy_run()], None, "7", {}, "holds no prod-promotion.json"),
        ([], RECORD, "7", {}, "has no run on main"),
    ],
)
def test_promote_refuses_a_run_it_cannot_vouch_for(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    newest: list[dict[str, Any]], record: dict[str, str] | None, version: str,
    env: dict[str, str], error: str,
) -> None:  # fmt: skip
    serve_deploy_run(github, None if record is None else json.dumps(record).encode())
    if record is None:
        github.answer("/storage/signed.zip", b"not a zip")
    github.answer(f"{PREFIX}/actions/workflows/deploy.yml/runs", {"workflow_runs": newest})
    assert run_verify(github, tmp_path, version, **env) == prod_gate.REFUSED
    err = capsys.readouterr().err
    assert error in err and len(err.splitlines()) == 1
    assert (tmp_path / "output").read_text() == ""


def test_promote_refuses_a_run_without_the_artifact(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run whose gate saw reviewers (or whose artifact expired) has nothing to promote."""
    serve_deploy_run(github, json.dumps(RECORD).encode())
    expired = {"artifacts": [{"id": 9, "name": "prod-promotion", "expired": True}]}
    github.answer(f"{PREFIX}/actions/runs/{RUN_ID}/artifacts", expired)
    assert run_verify(github, tmp_path) == prod_gate.REFUSED
    assert "no (unexpired) prod-promotion artifact" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("run_id", "version", "ref", "error"),
    [
        ("4242; curl x | sh", "7", "refs/heads/main", "deploy_run_id"),
        ("4242", "07", "refs/heads/main", "model_version"),
        ("4242", "7\n::add-mask::x", "refs/heads/main", "model_version"),
        ("4242", "7", "refs/heads/feature", "from main only"),
    ],
)
def test_promote_validates_its_inputs_before_asking_github(
    github: GitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    run_id: str, version: str, ref: str, error: str,
) -> None:  # fmt: skip
    code = run_verify(github, tmp_path, version, run_id=run_id, GITHUB_REF=ref)
    assert code == prod_gate.REFUSED and github.seen == []
    assert error in capsys.readouterr().err


def test_the_module_runs_with_the_standard_library_alone(github: GitHub, tmp_path: Path) -> None:
    """The gate job runs it without make install: python -S (no site-packages) suffices."""
    github.answer(f"{PREFIX}/environments/prod", environment(reviewers("lead")))
    output = tmp_path / "output"
    output.write_text("")
    result = subprocess.run(
        [sys.executable, "-S", "-s", "-E", "-m", "promotion.prod_gate", "check",
         "--model-version", "7", "--plan-changes", DIGEST,
         "--record", str(tmp_path / "r.json"), "--output", str(output)],
        cwd=REPO, env={**runner_env(github), "PATH": os.environ["PATH"]},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert outputs(output) == {"required_reviewers": "true"}
