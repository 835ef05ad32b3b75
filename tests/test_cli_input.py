"""Bad input to build.py and the pipeline CLIs, second round: each is one line naming what is
wrong and the fix, exit 2, before any AWS call (and, for the AWS settings, before any client
exists: a fresh process, since importing the SageMaker SDK builds one)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import build
from local_mode.emulator import role_arn
from pipelines import check_model, run_pipeline, smoke_run
from pipelines.batch_inference import preprocess
from tests.registry import GROUP, PROJECT, one_line_error

REPO = Path(__file__).resolve().parents[1]
SCHEMA = {"id_column": "id", "features": [{"name": "age", "type": "int"}]}
KWARGS = {"region": "eu-west-1", "role": role_arn("preprod"), "default_bucket": "b"}

# ------------------------------------------------- AWS settings botocore would trip over


def _commands(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    """CLI -> (its command line, the prefix of its one line)."""
    tfvars = str(tmp_path / "preprod.tfvars.json")
    return {
        "build.py": (
            ["build.py", "--stage", "preprod", "--model-package-group-name", GROUP,
             "--project-name", PROJECT, "--region", "eu-west-1",
             "--output", str(tmp_path / "out.tfvars.json")],
            "build.py: ",
        ),
        "run_pipeline": (
            ["-m", "pipelines.run_pipeline", "-n", "pipelines.batch_inference.pipeline",
             "--role-arn", role_arn("preprod"), "--kwargs", json.dumps(KWARGS)],
            "run_pipeline: error: ",
        ),
        "run_pipeline --stage": (
            ["-m", "pipelines.run_pipeline", "--tfvars", tfvars, "--date", "2026-11-01"],
            "run_pipeline: error: ",
        ),
        "smoke_run": (["-m", "pipelines.smoke_run", "--tfvars", tfvars], "smoke_run: "),
        "check_model": (["-m", "pipelines.check_model", "--tfvars", tfvars], "check_model: "),
        "get_pipeline_definition": (
            ["-m", "pipelines.get_pipeline_definition", "-n", "pipelines.batch_inference.pipeline",
             "--kwargs", json.dumps(KWARGS)],
            "get_pipeline_definition: error: ",
        ),
    }  # fmt: skip


NO_SCHEME = (
    "AWS_ENDPOINT_URL is 'localhost:5000': an endpoint URL needs a scheme and a host, "
    "e.g. http://localhost:5000"
)
SETTING_CASES = {
    "AWS_MAX_ATTEMPTS=abc": (
        {"AWS_MAX_ATTEMPTS": "abc"},
        "AWS_MAX_ATTEMPTS is 'abc': give a whole number of attempts >= 1 (or unset it for 10)",
    ),
    "AWS_MAX_ATTEMPTS=0": (
        {"AWS_MAX_ATTEMPTS": "0"},
        "AWS_MAX_ATTEMPTS is '0': give a whole number of attempts >= 1 (or unset it for 10)",
    ),
    "AWS_MAX_ATTEMPTS=-2": (
        {"AWS_MAX_ATTEMPTS": "-2"},
        "AWS_MAX_ATTEMPTS is '-2': give a whole number of attempts >= 1 (or unset it for 10)",
    ),
    "AWS_ENDPOINT_URL without a scheme": ({"AWS_ENDPOINT_URL": "localhost:5000"}, NO_SCHEME),
    "AWS_ENDPOINT_URL_SAGEMAKER without a scheme": (
        {"AWS_ENDPOINT_URL_SAGEMAKER": "127.0.0.1:5000"},
        "AWS_ENDPOINT_URL_SAGEMAKER is '127.0.0.1:5000': an endpoint URL needs a scheme and "
        "a host, e.g. http://127.0.0.1:5000",
    ),
}


@pytest.mark.parametrize("setting", list(SETTING_CASES))
@pytest.mark.parametrize(
    "cli",
    ["build.py", "run_pipeline", "run_pipeline --stage", "smoke_run", "check_model",
     "get_pipeline_definition"],
)  # fmt: skip
def test_a_bad_aws_setting_is_one_line_and_exit_2_in_every_cli(
    tmp_path: Path, cli: str, setting: str
) -> None:
    variables, message = SETTING_CASES[setting]
    args, prefix = _commands(tmp_path)[cli]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        **variables,
    }
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == prefix + message
    assert list(tmp_path.iterdir()) == []


def test_build_py_refuses_an_endpoint_url_option_without_a_scheme(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str]
) -> None:
    args, _ = _commands(tmp_path)["build.py"]
    assert build.main([*args[1:], "--endpoint-url", "localhost:4566"]) == 2
    assert one_line_error(capsys) == (
        "build.py: --endpoint-url is 'localhost:4566': an endpoint URL needs a scheme and a "
        "host, e.g. http://localhost:4566"
    )
    assert no_network == []


# ------------------------------------------------------------------- --tfvars DIR


TFVARS_CLIS: dict[str, tuple[Callable[[list[str]], int], list[str], str]] = {
    "smoke_run": (smoke_run.main, [], "smoke_run: "),
    "check_model": (check_model.main, [], "check_model: "),
    "run_pipeline --tfvars (backfill)": (
        run_pipeline.main,
        ["--date", "2026-11-01"],
        "run_pipeline: ",
    ),
}


@pytest.mark.parametrize("cli", list(TFVARS_CLIS))
def test_tfvars_naming_a_directory_is_one_line_and_exit_2(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str], cli: str
) -> None:
    main, extra, prefix = TFVARS_CLIS[cli]
    assert main(["--tfvars", str(tmp_path), *extra]) == 2
    assert one_line_error(capsys) == (
        f"{prefix}{tmp_path} is a directory: pass build.py's output file, e.g. "
        f"{tmp_path / 'preprod.tfvars.json'}"
    )
    assert no_network == []


@pytest.mark.parametrize("cli", ["smoke_run", "check_model"])
@pytest.mark.parametrize("summary", ["a directory", "under a file"])
def test_a_summary_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str], cli: str, summary: str
) -> None:
    """The report was written after the run, whose verdict a traceback then lost."""
    main, _, prefix = TFVARS_CLIS[cli]
    (tmp_path / "file").write_text("")
    path = tmp_path if summary == "a directory" else tmp_path / "file" / "summary.md"
    assert main(["--tfvars", str(tmp_path / "preprod.tfvars.json"), "--summary", str(path)]) == 2
    line = one_line_error(capsys)
    assert line.startswith(f"{prefix}--summary: "), line
    assert ("is a directory; name a file" if summary == "a directory" else "cannot write") in line
    assert no_network == []


# ------------------------------------------------ build.py: the schema and the project


def _schema_cases(tmp_path: Path) -> dict[str, Path]:
    """Schemas Preprocess cannot load, each a file (or folder) under ``tmp_path``."""
    cases = {
        "a UTF-8 BOM": b"\xef\xbb\xbf" + json.dumps(SCHEMA).encode(),
        "not JSON": b"{id_column: id}",
        "not UTF-8": b'{"id_column": "\xff"}',
        "a list": b"[1, 2]",
        "no features": json.dumps({"id_column": "id"}).encode(),
        "an unknown type": json.dumps(
            {"id_column": "id", "features": [{"name": "a", "type": "decimal"}]}
        ).encode(),
        "a duplicate column": json.dumps(
            {"id_column": "id", "features": [{"name": "id"}]}
        ).encode(),
    }
    paths = {}
    for name, body in cases.items():
        path = tmp_path / "schemas" / f"{name.replace(' ', '-')}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(body)
        paths[name] = path
    return paths


SCHEMA_CASES = [
    "a UTF-8 BOM", "not JSON", "not UTF-8", "a list", "no features", "an unknown type",
    "a duplicate column",
]  # fmt: skip


def _build(tmp_path: Path, *extra: str) -> int:
    return build.main(
        ["--stage", "preprod", "--model-package-group-name", GROUP, "--region", "eu-west-1",
         "--output", str(tmp_path / "out" / "preprod.tfvars.json"), *extra]
    )  # fmt: skip


@pytest.mark.parametrize("case", SCHEMA_CASES)
def test_a_schema_preprocess_cannot_load_is_refused_offline(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    schema = _schema_cases(tmp_path)[case]
    with pytest.raises(preprocess.UsageError) as refused:  # Preprocess's own verdict
        preprocess.Schema.load(schema)
    code = _build(tmp_path, "--project-name", PROJECT, "--feature-schema", str(schema))
    assert code == 2
    assert one_line_error(capsys) == (
        f"build.py: --feature-schema: {refused.value}; Preprocess could not load it, so "
        "every run of the stage would fail"
    )
    assert no_network == []
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_schema_directory_is_named_as_one(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _build(tmp_path, "--project-name", PROJECT, "--feature-schema", str(tmp_path)) == 2
    assert one_line_error(capsys) == (
        f"build.py: --feature-schema {tmp_path} is a directory: pass the schema's JSON file, "
        f"e.g. {tmp_path / 'feature-schema.json'}"
    )
    assert no_network == []


PROJECT_NAMES = ["churn model", "Churn", "churn_models", "-churn", "churn-", "ab", "c" * 33, "ü-x"]


@pytest.mark.parametrize("name", PROJECT_NAMES)
def test_an_invalid_project_name_is_refused_offline(
    tmp_path: Path, no_network: list, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    assert _build(tmp_path, f"--project-name={name}") == 2
    assert one_line_error(capsys) == (
        f"build.py: project name {name!r} (--project-name or SAGEMAKER_PROJECT_NAME) must be "
        "3-32 lowercase letters, digits and hyphens, starting and ending with a letter or "
        "digit: the stage's base infrastructure and template accept no other"
    )
    assert no_network == []


@pytest.mark.parametrize(
    "module",
    [
        "batch-config-template.tf",
        "infra/target-account/variables.tf",
        "infra/dev-account/variables.tf",
    ],
)
def test_the_project_name_rule_is_the_templates(module: str) -> None:
    text = (REPO / module).read_text()
    (rule,) = re.findall(r'regex\("\^([^"]+)\$", var\.project_name\)', text)
    assert rule == build.PROJECT_NAME.pattern
