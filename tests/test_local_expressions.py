"""Local mode: evaluating a definition's expressions and ordering its steps."""

from __future__ import annotations

import pytest

from local_mode.expressions import (
    Context,
    DefinitionError,
    execution_order,
    property_path,
    resolve,
    resolve_parameters,
)

DEFINITION = {
    "Parameters": [
        {"Name": "Input", "Type": "String", "DefaultValue": "s3://b/in/"},
        {"Name": "Count", "Type": "Integer", "DefaultValue": 1},
        {"Name": "Model", "Type": "String"},
        {"Name": "Ratio", "Type": "Float", "DefaultValue": 0.5},
        {"Name": "Flag", "Type": "Boolean", "DefaultValue": False},
    ]
}


def test_parameters_take_defaults_overrides_and_types() -> None:
    values = resolve_parameters(DEFINITION, {"Model": "m-1", "Count": "3", "Flag": "true"})
    assert values == {"Input": "s3://b/in/", "Count": 3, "Model": "m-1", "Ratio": 0.5, "Flag": True}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "parameter Model has no default"),
        ({"Model": "m", "Nope": 1}, "unknown pipeline parameter(s) Nope"),
        ({"Model": "m", "Count": "2.5"}, "Count must be Integer, got '2.5'"),
        ({"Model": "m", "Flag": "maybe"}, "Flag must be Boolean"),
    ],
)
def test_bad_parameters_are_named(overrides: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_parameters(DEFINITION, overrides)


def context() -> Context:
    return Context(
        parameters={"Out": "s3://b/out", "Count": 2},
        execution={"PipelineExecutionId": "abc123def456"},
        steps={
            "Prep": {
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                        {"OutputName": "inference", "S3Output": {"S3Uri": "s3://b/inf"}},
                    ]
                }
            }
        },
    )


def test_resolve_nested_gets_and_joins() -> None:
    value = {
        "Path": {
            "Std:Join": {
                "On": "/",
                "Values": [
                    {"Get": "Parameters.Out"},
                    {"Get": "Execution.PipelineExecutionId"},
                    "predictions",
                ],
            }
        },
        "Count": {"Get": "Parameters.Count"},
        "Data": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['inference'].S3Output.S3Uri"},
        "First": {"Get": "Steps.Prep.ProcessingOutputConfig.Outputs[0].OutputName"},
        "List": [{"Get": "Parameters.Count"}, "x"],
    }
    assert resolve(value, context()) == {
        "Path": "s3://b/out/abc123def456/predictions",
        "Count": 2,
        "Data": "s3://b/inf",
        "First": "train",
        "List": [2, "x"],
    }


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"Get": "Parameters.Missing"}, "undeclared parameter 'Missing'"),
        ({"Get": "Steps.Later.Anything"}, "read before that step ran"),
        ({"Get": "Steps.Prep.ProcessingOutputConfig.Outputs['nope'].S3Output"}, "does not exist"),
        ({"Get": "Execution.Nope"}, "execution variable 'Nope'"),
        ({"Std:JsonGet": {}}, "Std:JsonGet is not supported"),
    ],
)
def test_unresolvable_expressions_fail_clearly(expression: dict, message: str) -> None:
    with pytest.raises(DefinitionError, match=message):
        resolve(expression, context())


def test_property_path_rejects_garbage() -> None:
    with pytest.raises(DefinitionError, match="cannot parse"):
        property_path({"a": 1}, "a..b", "x")


def step(name: str, depends: list[str] | None = None, reads: str | None = None) -> dict:
    arguments = {"Input": {"Get": f"Steps.{reads}.Output"}} if reads else {}
    return {"Name": name, "Type": "Processing", "Arguments": arguments, "DependsOn": depends or []}


def test_steps_run_after_what_they_read_and_depend_on() -> None:
    definition = {
        "Steps": [step("Score", reads="Clean"), step("Report", depends=["Score"]), step("Clean")]
    }
    assert [s["Name"] for s in execution_order(definition)] == ["Clean", "Score", "Report"]


def test_cycles_and_unknown_steps_fail() -> None:
    with pytest.raises(DefinitionError, match="depend on each other"):
        execution_order({"Steps": [step("A", ["B"]), step("B", ["A"])]})
    with pytest.raises(DefinitionError, match="unknown step"):
        execution_order({"Steps": [step("A", ["Ghost"])]})
