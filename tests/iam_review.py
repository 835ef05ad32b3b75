"""Every IAM policy document a Terraform root renders, judged by two checkers nobody here wrote.

checkov reads the ``.tf`` source; parliament and cloudsplaining read the policies as AWS
receives them: right after an apply test applies a root to the emulator, ``check`` takes
every policy document from ``terraform show -json`` (trust, inline and managed policies,
resource policies, Lambda permissions), runs both checkers on them in one subprocess of their
own venv (``tests/iam_checkers.py``; ``.venv-iam``, built by ``make install``) and compares
what they find with the reviewed list in ``.iam-review.yaml``. A finding not on the list
fails (fix the policy, or add the finding with its reason); so does an entry that no longer
occurs (remove it), so the list says what is true today.

A finding is keyed by checker, issue, document (resource address and kind), statement (its
``Sid``, else ``#n``) and subject (the action as the policy writes it, the principal, the
condition key); the emulator's account ids and the stage's name in a subject read
``${account}``, ``${dev}`` ..., ``${stage}``, so preprod and prod share one list for the
stage template.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from local_mode.emulator import ACCOUNTS
from tests.terraform_cli import REPO, require

IAM_PYTHON = REPO / ".venv-iam" / "bin" / "python"
RUNNER = REPO / "tests" / "iam_checkers.py"
ACCEPTED = REPO / ".iam-review.yaml"
REMEDY = "run make install: the IAM checkers have their own venv"

# resource type -> the attribute holding its policy document, what the document is to the
# checkers, and what the key calls it
POLICY_ATTRIBUTES: dict[str, tuple[str, str, str]] = {
    "aws_iam_role": ("assume_role_policy", "trust", "trust policy"),
    "aws_iam_role_policy": ("policy", "identity", "inline policy"),
    "aws_iam_user_policy": ("policy", "identity", "inline policy"),
    "aws_iam_group_policy": ("policy", "identity", "inline policy"),
    "aws_iam_policy": ("policy", "identity", "managed policy"),
    "aws_s3_bucket_policy": ("policy", "resource", "bucket policy"),
    "aws_sqs_queue_policy": ("policy", "resource", "queue policy"),
    "aws_sns_topic_policy": ("policy", "resource", "topic policy"),
    "aws_kms_key": ("policy", "resource", "key policy"),
    "aws_ecr_registry_policy": ("policy", "resource", "registry policy"),
    "aws_ecr_repository_policy": ("policy", "resource", "repository policy"),
    "aws_cloudwatch_log_resource_policy": ("policy_document", "resource", "logs policy"),
    "aws_secretsmanager_secret_policy": ("policy", "resource", "secret policy"),
    "aws_cloudwatch_event_bus_policy": ("policy", "resource", "event bus policy"),
}
# attributes that repeat a document a resource above holds (the provider reads it back), or
# hold AWS's default when the root sets none: taken only when they say something else
SECONDARY_ATTRIBUTES = {
    ("aws_iam_role", "inline_policy"),
    ("aws_s3_bucket", "policy"),
    ("aws_sqs_queue", "policy"),
    ("aws_sns_topic", "policy"),
    ("aws_ecr_repository", "policy"),
    ("aws_secretsmanager_secret", "policy"),
}
# AWS's own default policies (an SNS topic's): not rendered by any root
DEFAULT_POLICY_IDS = {"__default_policy_ID"}


@dataclass(frozen=True)
class Document:
    """One policy document as AWS holds it.

    ``resource`` is the ARN it is attached to (a trust policy's role, a key policy's key),
    which parliament needs to read a statement without ``Resource`` or a key policy's ``*``.
    """

    key: str
    type: str  # identity | trust | resource
    policy: dict[str, Any]
    resource: str | None = None
    star_is_resource: bool = False  # a key policy: "*" means this key


class Finding(NamedTuple):
    checker: str
    issue: str
    document: str
    statement: str
    subject: str

    def line(self) -> str:
        where = f"{self.document}" + (f" statement {self.statement}" if self.statement else "")
        return f"{self.checker} {self.issue} in {where}: {self.subject}"


def _resources(module: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every managed resource of a state module and its child modules."""
    for resource in module.get("resources", []):
        if resource.get("mode") == "managed":
            yield resource
    for child in module.get("child_modules", []):
        yield from _resources(child)


def _parsed(value: Any) -> dict[str, Any] | None:
    """A policy document from a state attribute, or None if the attribute holds none."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, dict) and "Statement" in value:
        return value
    return None


def _lambda_permission(values: dict[str, Any], functions: dict[str, str]) -> dict[str, Any]:
    """The statement ``aws_lambda_permission`` adds to its function's resource policy (the
    state holds its arguments, not the policy Lambda builds from them)."""
    principal = values["principal"]
    statement: dict[str, Any] = {
        "Sid": values.get("statement_id") or "",
        "Effect": "Allow",
        "Principal": (
            {"Service": principal} if principal.endswith(".amazonaws.com") else {"AWS": principal}
        ),
        "Action": values["action"],
        "Resource": functions.get(values["function_name"], values["function_name"]),
    }
    conditions: dict[str, dict[str, str]] = {}
    if values.get("source_arn"):
        conditions.setdefault("ArnLike", {})["AWS:SourceArn"] = values["source_arn"]
    if values.get("source_account"):
        conditions.setdefault("StringEquals", {})["AWS:SourceAccount"] = values["source_account"]
    if values.get("principal_org_id"):
        conditions.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = values["principal_org_id"]
    if conditions:
        statement["Condition"] = conditions
    return {"Version": "2012-10-17", "Statement": [statement]}


def policy_documents(state: dict[str, Any]) -> list[Document]:
    """Every policy document in ``terraform show -json``'s state, keyed by address and kind.

    A JSON attribute with a ``Statement`` that no rule above covers is an error: a new kind
    of policy must be added here, not go unchecked.
    """
    resources = list(_resources(state.get("values", {}).get("root_module", {})))
    functions = {}
    for resource in resources:
        if resource["type"] == "aws_lambda_function":
            values = resource["values"]
            functions[values["function_name"]] = functions[values["arn"]] = values["arn"]
    documents: list[Document] = []
    secondary: list[Document] = []
    unknown: list[str] = []
    for resource in resources:
        address, kind, values = resource["address"], resource["type"], resource["values"] or {}
        if kind == "aws_lambda_permission":
            documents.append(
                Document(
                    f"{address} (lambda permission)",
                    "resource",
                    _lambda_permission(values, functions),
                )
            )
            continue
        for attribute, value in values.items():
            held = (
                [_parsed(p.get("policy")) for p in value if isinstance(p, dict)]
                if isinstance(value, list)
                else [_parsed(value)]
            )
            for policy in filter(None, held):
                arn = values.get("arn")
                if POLICY_ATTRIBUTES.get(kind, ("",))[0] == attribute:
                    _, doc_type, label = POLICY_ATTRIBUTES[kind]
                    documents.append(
                        Document(
                            f"{address} ({label})",
                            doc_type,
                            policy,
                            resource=arn,
                            star_is_resource=kind == "aws_kms_key",
                        )
                    )
                elif (kind, attribute) in SECONDARY_ATTRIBUTES:
                    if policy.get("Id") not in DEFAULT_POLICY_IDS:
                        role = "identity" if kind == "aws_iam_role" else "resource"
                        key = f"{address} ({attribute})"
                        secondary.append(Document(key, role, policy, arn))
                else:
                    unknown.append(f"{address}.{attribute}")
    assert not unknown, (
        f"policy documents of a kind tests/iam_review.py does not know: {unknown}; add the "
        "resource type to POLICY_ATTRIBUTES (or SECONDARY_ATTRIBUTES if it repeats another)"
    )
    seen = [d.policy for d in documents]
    return documents + [d for d in secondary if d.policy not in seen]


def normaliser(account: str) -> Callable[[str], str]:
    """Subjects with the emulator's account ids, and a stage's own name, as placeholders."""
    own = ACCOUNTS[account]
    names = {own: "${account}", **{a: f"${{{n}}}" for n, a in ACCOUNTS.items() if a != own}}
    stage = re.compile(rf"(?<![A-Za-z0-9]){re.escape(account)}(?![A-Za-z0-9])")

    def normalise(text: str) -> str:
        for number, name in names.items():
            text = text.replace(number, name)
        return text if account == "dev" else stage.sub("${stage}", text)

    return normalise


def missing_checkers() -> list[str]:
    """Why the checkers cannot run here, if they cannot (``require``'s form)."""
    return [] if IAM_PYTHON.is_file() else [f"{IAM_PYTHON} does not exist"]


def run_checkers(documents: Iterable[Document], account_id: str) -> list[dict[str, str]]:
    """Both checkers on every document, in one subprocess of ``.venv-iam``'s Python, with an
    empty HOME (policy_sentry would read ``~/.policy_sentry`` before its own data)."""
    require(missing_checkers(), REMEDY)
    payload = {"documents": [{**asdict(d), "account": account_id} for d in documents]}
    with tempfile.TemporaryDirectory(prefix="iam-review-home-") as home:
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "PYTHONHASHSEED": "0",  # the checkers' sets, printed in the details, in one order
        }
        result = subprocess.run(
            [str(IAM_PYTHON), str(RUNNER)],
            input=json.dumps(payload),
            capture_output=True,
            text=True,
            env=environment,
            timeout=300,
            check=False,
        )
    assert result.returncode == 0, f"the IAM checkers failed: {result.stdout}{result.stderr}"
    output = json.loads(result.stdout)
    assert output["versions"] == {"parliament": "1.6.4", "cloudsplaining": "0.9.1"}, output[
        "versions"
    ]
    findings: list[dict[str, str]] = output["findings"]
    return findings


def review(documents: list[Document], account: str) -> dict[Finding, str]:
    """Every finding, normalised, with the checker's detail (for the failure message).

    A checker's findings of one issue in one statement are one finding whose subject lists
    them (``sqs:CreateQueue, sqs:SetQueueAttributes``): one entry, one reason, and a new
    action in that statement still changes the key.
    """
    normalise = normaliser(account)
    grouped: dict[tuple[str, str, str, str, str], dict[str, str]] = {}
    for raw in run_checkers(documents, ACCOUNTS[account]):
        statement, subject = normalise(raw["statement"]), normalise(raw["subject"])
        # a whole-document finding (statement "") stays one finding per subject
        group = (raw["checker"], raw["issue"], raw["document"], statement, statement or subject)
        grouped.setdefault(group, {})[subject] = normalise(raw["detail"])
    found: dict[Finding, str] = {}
    for (checker, issue, document, statement, _), subjects in grouped.items():
        finding = Finding(checker, issue, document, statement, ", ".join(sorted(subjects)))
        found[finding] = "; ".join(dict.fromkeys(subjects[s] for s in sorted(subjects)))
    return found


def accepted(root: str, path: Path = ACCEPTED) -> dict[Finding, str]:
    """The reviewed list's entries for one root: finding -> reason."""
    entries = (yaml.safe_load(path.read_text()) or {}).get(root) or []
    listed = {}
    for entry in entries:
        finding = Finding(*(str(entry.get(f) or "") for f in Finding._fields))
        assert str(entry.get("reason") or "").strip(), f"{path.name}: no reason for {finding}"
        assert finding not in listed, f"{path.name}: listed twice: {finding.line()}"
        listed[finding] = entry["reason"]
    return listed


def compare(
    found: dict[Finding, str], listed: dict[Finding, str], documents: Iterable[str]
) -> tuple[list[Finding], list[Finding]]:
    """New findings, and accepted entries that no longer occur. An entry whose document this
    run did not render (a resource with count 0 here, e.g. prod's upload queue) is not
    judged by it; ``tests/test_iam_review.py`` checks every entry names a resource the root
    declares."""
    rendered = set(documents)
    new = sorted(set(found) - set(listed))
    stale = sorted(f for f in set(listed) - set(found) if f.document in rendered)
    return new, stale


def as_entry(finding: Finding, reason: str = "") -> dict[str, str]:
    """A finding as an entry of the reviewed list (the failure message prints it to paste)."""
    return {**finding._asdict(), "reason": reason}


def failure_message(
    root: str, new: list[Finding], stale: list[Finding], found: dict[Finding, str]
) -> str:
    """What failed and what to do: each new finding on one line (with the checker's detail)
    and the entry to paste under the root once the finding is judged acceptable; each stale
    entry, to remove."""
    lines = []
    if new:
        lines.append(
            f"{len(new)} IAM finding(s) in {root} not in {ACCEPTED.name}: fix the policy, or add "
            f"the entry under '{root}:' with a one-line reason why it is acceptable"
        )
        for finding in new:
            entry = json.dumps(as_entry(finding, "..."))
            lines.append(f"- {finding.line()}  [{found[finding][:200]}]\n    {entry}")
    if stale:
        lines.append(
            f"{len(stale)} entr(y/ies) under '{root}:' in {ACCEPTED.name} no longer found: "
            "remove them from the list"
        )
        lines += [f"- {finding.line()}" for finding in stale]
    return "\n".join(lines)


def check(tf: Callable[..., subprocess.CompletedProcess], root: str, account: str) -> None:
    """The apply tests' one call: every policy ``root`` (applied in ``account``) rendered,
    against the reviewed list."""
    if missing_checkers() and os.environ.get("CI") != "true":
        warnings.warn(
            f"IAM policies not reviewed: {missing_checkers()[0]} ({REMEDY})", stacklevel=2
        )
        return
    documents = policy_documents(json.loads(tf("show", "-json").stdout))
    assert documents, f"no policy document in {root}'s state"
    found = review(documents, account)
    new, stale = compare(found, accepted(root), (d.key for d in documents))
    assert not new and not stale, failure_message(root, new, stale, found)
