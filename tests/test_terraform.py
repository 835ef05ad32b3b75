"""Terraform, offline: fmt, validate and checkov for every root; the stage template's
variables against build.py's output, ``terraform test`` per stage, and apply -> plan ->
destroy of both stages against the emulator. (``tests/terraform_cli.py`` runs terraform.)
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import hcl2
import numpy as np
import pytest

import utils
from examples.breast_cancer.inference import prediction_line
from local_mode import alarms as local_alarms
from local_mode import freshness as local_freshness
from local_mode import quality_alarms
from local_mode.emulator import ACCOUNTS, REGION, Emulator, environment
from local_mode.executor import job_name
from local_mode.transform import resolve_model
from tests import iam_review, metric_filters
from tests.dashboard_series import search_matches, series, undocumented
from tests.iam_calls import image_pulls, missing_permissions, policy_document
from tests.metric_filters import metric_value
from tests.provider_requests import (
    Request,
    logged_requests,
    problems,
    refused_requests,
    rest_request_bodies,
)
from tests.registry import PROJECT, DevRegistry, create_stage, pulled_images, run_build
from tests.rollback_proxy import rolled_back_updates
from tests.terraform_cli import (
    CHECKOV,
    REPO,
    ROOTS,
    copy_root,
    declared_variables,
    in_account,
    local_root,
    module_files,
    require,
    root_files,
    run_terraform,
    unexpected_drift,
)

TEST_FILES = sorted((REPO / "tests" / "terraform").glob("*.tftest.hcl"))


@pytest.fixture(scope="session")
def workdir(terraform: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template as a root module, with its tests, initialised from the mirror."""
    root = copy_root("stage", tmp_path_factory.mktemp("stage-module"))
    (root / "tests").mkdir()
    for test_file in TEST_FILES:
        shutil.copy(test_file, root / "tests" / test_file.name)
    result = run_terraform(terraform, root, "init", "-backend=false")
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_formatting(terraform: str) -> None:
    files = [str(f) for root in sorted(ROOTS) for f in root_files(root)]
    files += [*map(str, module_files()), *map(str, TEST_FILES)]
    result = run_terraform(terraform, REPO, "fmt", "-check", "-diff", *files)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("root", sorted(ROOTS))
def test_validate(terraform: str, tmp_path: Path, root: str) -> None:
    module = copy_root(root, tmp_path)
    result = run_terraform(terraform, module, "init", "-backend=false")
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_terraform(terraform, module, "validate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


@pytest.mark.infra  # Terraform's static analysis: no terraform fixture, but the infra lane
@pytest.mark.parametrize("root", sorted(ROOTS))
def test_checkov_finds_nothing(tmp_path: Path, root: str) -> None:
    """Zero findings; each skipped check is justified in .checkov.yaml."""
    require(
        [] if CHECKOV.is_file() else [f"{CHECKOV} does not exist"],
        "run make install: checkov has its own venv",
    )
    module = copy_root(root, tmp_path)
    result = subprocess.run(
        [str(CHECKOV), "--config-file", str(REPO / ".checkov.yaml"), "--directory", str(module)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout


def promoted_tfvars(
    aws: Emulator, stage: str, tmp_path: Path, subnets: list[str] | None = None
) -> dict:
    """Real build.py output for ``stage``, against the emulator (prod's base in subnets)."""
    DevRegistry(aws).register("Approved")
    create_stage(aws, stage, subnets=subnets or (["subnet-0a"] if stage == "prod" else None))
    return promote_next(stage, tmp_path)


def promote_next(stage: str, tmp_path: Path) -> dict:
    """build.py for ``stage`` again (after a new version was registered): its tfvars."""
    assert run_build(tmp_path, stage=stage) == 0
    return json.loads((tmp_path / f"{stage}.tfvars.json").read_text())


@pytest.mark.parametrize("stage", ["preprod", "prod"])
def test_tfvars_keys_are_exactly_the_declared_variables(
    aws: Emulator, tmp_path: Path, stage: str
) -> None:
    values = promoted_tfvars(aws, stage, tmp_path)
    variables = declared_variables()
    assert set(values) == set(variables), (
        f"written but not declared: {sorted(set(values) - set(variables))}; "
        f"declared but not written: {sorted(set(variables) - set(values))}"
    )
    required = {name for name, spec in variables.items() if "default" not in spec}
    assert required <= {name for name, value in values.items() if value is not None}


# variables build.py computes; a stage file may set none of them
COMPUTED_WITH_DEFAULTS = {"project_id", "previous_model", "kms_key_arn", "subnet_ids"}
COMPUTED_WITH_DEFAULTS |= {"security_group_ids", "upload_starter_zip", "baseline_url"}
COMPUTED_WITH_DEFAULTS |= {"endpoint_config_in_service"}  # from the deployment record
COMPUTED_WITH_DEFAULTS |= {"external_inputs"}  # from SSM (infra/target-account)
# the shadow run's role (SSM, optional), its pipeline and that pipeline's definition
COMPUTED_WITH_DEFAULTS |= {"shadow_role_arn", "shadow_pipeline_name"}
COMPUTED_WITH_DEFAULTS |= {"shadow_pipeline_definition_s3_key"}


def test_the_stage_file_settings_are_the_templates_tunable_variables() -> None:
    """promotion/stage_config.py checks the stage file offline against what the template
    declares: same names, same Terraform types, null allowed exactly where it is the default;
    and every variable with a default that build.py does not compute is settable."""
    variables = declared_variables()
    for name, setting in utils.SETTINGS.items():
        assert name in variables, f"{name} is settable but the template declares no such variable"
        declared = variables[name]["type"]  # python-hcl2: "${object({...})}" for an object
        assert declared in (setting.terraform_type, f"${{{setting.terraform_type}}}") or (
            setting.terraform_type == "object" and declared.startswith("${object(")
        ), name
        assert setting.nullable == (
            "default" in variables[name] and variables[name]["default"] is None
        ), name
    tunable = {n for n, spec in variables.items() if "default" in spec} - COMPUTED_WITH_DEFAULTS
    assert tunable <= set(utils.SETTINGS)
    # a stage file without gate settings: the schedule's values and the definition's defaults
    # (what a run started by hand gets) are the same
    from pipelines.batch_inference.pipeline import QualityGate

    gate = QualityGate()
    assert (
        variables["max_rejected_fraction"]["default"],
        variables["max_drift_score"]["default"],
        variables["quality_gate_mode"]["default"].strip('"'),  # python-hcl2 keeps quotes
    ) == (gate.max_rejected_fraction, gate.max_drift_score, gate.mode)


@pytest.mark.parametrize("stage", ["preprod", "prod"])
def test_terraform_test_with_a_mock_provider(
    aws: Emulator, terraform: str, workdir: Path, tmp_path: Path, stage: str
) -> None:
    var_file = tmp_path / f"{stage}.tfvars.json"
    var_file.write_text(json.dumps(promoted_tfvars(aws, stage, tmp_path)))
    result = run_terraform(terraform, workdir, "test", f"-var-file={var_file}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "64 passed, 0 failed" in result.stdout


# moto 5.2.5 does not keep these, so a plan right after apply always wants to change them:
# EnableNetworkIsolation and VpcConfig of a model (the model is then "replaced"), and a
# queue's RedrivePolicy, which it re-serialises with spaces (AWS returns the compact JSON it
# was given). Nothing of the pipeline may drift: AWS would refuse that update (#38259).
EMULATOR_DRIFT = {
    "module.stage.aws_sagemaker_model.batch[*]": {
        "enable_network_isolation",
        "vpc_config",
        "arn",
        "id",
        "container",
        "inference_execution_config",
        "tags_all",
        "primary_container",
    },
    "module.stage.aws_sqs_queue.uploads[0]": {"redrive_policy"},
    # moto keeps no DeadLetterConfig (the request that sets it is checked instead)
    "module.stage.module.schedule_function.aws_lambda_function.this": {"dead_letter_config"},
    "module.stage.module.outcome_function.aws_lambda_function.this": {"dead_letter_config"},
}
# ...and when an apply then sets that RedrivePolicy again, moto's SetQueueAttributes drops the
# queue's Policy (sqs/models.py `_set_attributes`: `self.policy = attributes.get("Policy")`),
# while AWS changes only the attributes a request names (SetQueueAttributes API reference).
AFTER_REAPPLY_DRIFT = {
    **EMULATOR_DRIFT,
    "module.stage.aws_sqs_queue_policy.uploads[0]": {"policy", "queue_url"},
}


def moved_blocks() -> dict[str, str]:
    """The stage root's moved blocks: the address each moves to -> the one it moves from."""
    # python-hcl2 wraps each address in "${...}"
    return {
        block["to"][2:-1]: block["from"][2:-1]
        for path in root_files("stage")
        for block in hcl2.loads(path.read_text()).get("moved", [])
    }


def address_before(address: str, moves: dict[str, str]) -> str:
    """The address a resource instance had before every move of ``moves``: a move of a
    resource carries its instances (``to[key]``), and moves chain (the template moves
    aws_cloudwatch_metric_alarm.stage into the module, and its instances from their names
    before the alarms were one resource)."""
    while True:
        for to in sorted(moves, key=len, reverse=True):
            if address == to or address.startswith(f"{to}["):
                address = moves[to] + address[len(to) :]
                break
        else:
            return address


def managed_resources(state: dict) -> list[dict]:
    """Every managed resource of ``terraform show -json``'s state, the modules' included."""
    found, modules = [], [state["values"]["root_module"]]
    while modules:
        module = modules.pop(0)
        found += [r for r in module.get("resources", []) if r["mode"] == "managed"]
        modules += module.get("child_modules", [])
    return found


def planned_changes(tf: Callable[..., subprocess.CompletedProcess]) -> dict:
    tf("plan", "-var-file=stage.tfvars.json", "-out=check.plan")
    return json.loads(tf("show", "-json", "check.plan").stdout)


JOB_LOG_GROUPS = ("/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TransformJobs")


def quality_filters(aws: Emulator, stage: str) -> dict[str, Any]:
    """The stage's metric filters on the jobs' and the schedule function's log groups, by
    metric name."""
    logs = aws.client("logs", stage)
    schedule = f"/aws/lambda/{PROJECT}-{stage}-start-scheduled-run"
    outcome = f"/aws/lambda/{PROJECT}-{stage}-record-run-outcome"  # each run's cost
    return {
        f["metricTransformations"][0]["metricName"]: f
        for group in (*JOB_LOG_GROUPS, schedule, outcome)
        for f in logs.describe_metric_filters(logGroupName=group)["metricFilters"]
        if f["filterName"].startswith(f"{PROJECT}-{stage}-")
        and f["metricTransformations"][0]["metricNamespace"] == "BatchInference/Quality"
    }


def printed_metric_line(tmp_path: Path, pipeline: str, baseline: bool) -> str:
    """The JSON line preprocess.py prints for a small batch, with or without a baseline."""
    import contextlib
    import io

    from pipelines.batch_inference import preprocess, quality

    root = tmp_path / f"quality-{pipeline}-{baseline}"
    schema = {"id_column": "id", "features": [{"name": "x", "type": "float"}]}
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.csv").write_text("id,x\n" + "".join(f"r{i},{i % 7}\n" for i in range(50)))
    (root / "schema.json").write_text(json.dumps(schema))
    (root / "baseline.json").write_text(
        json.dumps(quality.compute_baseline({"x": np.arange(100) % 7 * 1.0}))
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = preprocess.main(
            ["--input-dir", str(root / "in"), "--output-dir", str(root / "out"),
             "--schema", str(root / "schema.json"), "--pipeline-name", pipeline,
             *(["--baseline", str(root / "baseline.json")] if baseline else [])]
        )  # fmt: skip
    assert code == 0
    (line,) = [x for x in out.getvalue().splitlines() if x.startswith("{")]
    return line


def day_line(pipeline: str, action: str) -> str:
    """The JSON line the schedule's function prints for a day (stage_runtime/runs.py)."""
    import contextlib
    import io
    from datetime import date

    from stage_runtime.runs import DayResult, report

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = DayResult(date(2026, 11, 1), action, "why", newly_empty=action == "empty")
        report(result, {"pipeline_name": pipeline}, True)
    (line,) = [x for x in out.getvalue().splitlines() if x.startswith("{")]
    return line


# the metrics the stage's filters make of evaluate.py's line (the model-quality job)
MODEL_QUALITY_FIELDS = {
    "QualityDrop": "quality_drop", "LabelCoverage": "label_coverage", "AUC": "auc",
    "Accuracy": "accuracy", "Precision": "precision", "Recall": "recall",
    "LogLoss": "log_loss", "CalibrationError": "calibration_error", "MAE": "mae",
    "RMSE": "rmse", "Bias": "bias",
}  # fmt: skip


def model_quality_line(tmp_path: Path, pipeline: str, task: str) -> str:
    """The JSON line evaluate.py prints for a small labelled day (its own main, in-process):
    a classification 20 % worse than registered (AUC 0.75 against 0.9375), or a regression
    that improved (RMSE 1.32 against 2: a negative drop, and a negative bias)."""
    import contextlib
    import io

    from pipelines.batch_inference import evaluate

    root = tmp_path / f"model-quality-{pipeline}-{task}"
    (root / "labels").mkdir(parents=True)
    (root / "table").mkdir()
    scores = [0.9, 0.2, 0.4, 0.6] if task == "classification" else [9.0, 19.0, 31.0, 38.0]
    labels = [1, 0, 1, 0] if task == "classification" else [10, 20, 30, 40]
    (root / "labels" / "a.csv").write_text(
        "id,label\n" + "".join(f"r{i},{v}\n" for i, v in enumerate(labels))
    )
    (root / "table" / "e.csv").write_text(
        "id,prediction,model_version,execution_id\n"
        + "".join(f"r{i},{v},1,exec\n" for i, v in enumerate(scores))
    )
    headline = {"classification": ("binary_classification_metrics", "auc", 0.9375),
                "regression": ("regression_metrics", "rmse", 2.0)}[task]  # fmt: skip
    registered = {headline[0]: {headline[1]: {"value": headline[2]}}}
    (root / "registered.json").write_text(json.dumps(registered))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = evaluate.main(
            ["--labels-dir", str(root / "labels"), "--predictions-dir", str(root / "table"),
             "--output-dir", str(root / "out"), "--registered", str(root / "registered.json"),
             "--id-column", "id", "--task", task, "--execution-id", "exec",
             "--day", "2026-11-01", "--pipeline-name", pipeline]
        )  # fmt: skip
    assert code == 0
    (line,) = out.getvalue().splitlines()
    return line


COST_METRICS = {"RunCost": "total_usd", "CostPer1000Rows": "cost_per_1000_rows"}


def assert_cost_metric_reads_the_outcome_functions_line(
    found: dict[str, Any], pipeline: str, stage: str
) -> None:
    """RunCost / CostPer1000Rows, on the run-outcome function's log group, read the line it
    prints for a run whose cost is known (stage_runtime/run_cost.py's ``metric_line``), and
    nothing of a run whose cost is unknown or of another pipeline."""
    from local_mode import cost_metrics
    from stage_runtime import prices, run_cost

    (transformation,) = found["metricTransformations"]
    metric = transformation["metricName"]
    assert found["logGroupName"] == f"/aws/lambda/{PROJECT}-{stage}-record-run-outcome"
    # local mode's declaration of the filter (what the demo evaluates) is the template's
    (declared,) = [m for m in cost_metrics.COST_METRICS if m.name == metric]
    assert found["filterPattern"] == declared.pattern_for(pipeline)
    assert transformation["metricValue"] == declared.value
    publish = partial(metric_value, found["filterPattern"], transformation["metricValue"])
    usages = [run_cost.JobUsage("Preprocess", "processing", "j", "ml.m5.xlarge", 2, 600.0)]
    cost = run_cost.cost(usages, prices.load_table(), 4000)
    assert cost[COST_METRICS[metric]] > 0
    assert publish(run_cost.metric_line(pipeline, "2026-11-01", cost)) == cost[COST_METRICS[metric]]
    unknown = run_cost.unknown_cost("the run's jobs could not be read", prices.load_table())
    assert publish(run_cost.metric_line(pipeline, "2026-11-01", unknown)) is None
    assert publish(run_cost.metric_line(f"{pipeline}-other", "2026-11-01", cost)) is None
    assert publish(day_line(pipeline, "started")) is None


def assert_quality_metrics_read_the_printed_line(
    aws: Emulator, stage: str, values: dict, tmp_path: Path
) -> None:
    """The metric filters, evaluated as AWS documents them (tests/metric_filters.py), read
    preprocess.py's own line: every metric of this pipeline's runs, DriftScore only when a
    baseline was measured, nothing of another pipeline's; the alarms watch those metrics."""
    filters = quality_filters(aws, stage)
    assert sorted(filters) == sorted(
        ["RowsRead", "RowsRejected", "RowsScored", "RejectedFraction", "DriftScore",
         "PredictionCount", "PredictionSum", "EmptyDays", *MODEL_QUALITY_FIELDS, *COST_METRICS]
    )  # fmt: skip
    pipeline = values["pipeline_name"]
    measured = printed_metric_line(tmp_path, pipeline, baseline=True)
    unmeasured = printed_metric_line(tmp_path, pipeline, baseline=False)
    other = printed_metric_line(tmp_path, f"{pipeline}-other", baseline=True)
    # the sample handlers' line for one Transform request (a sum may be negative for others)
    predictions = prediction_line(pipeline, np.array([0.25, 0.5, np.nan, 0.75]))
    negative = prediction_line(pipeline, np.array([-3.5, 1.0]))
    other_predictions = prediction_line(f"{pipeline}-other", np.array([0.5]))
    # the schedule function's line for a day without data, and for a day it started
    empty, started = (day_line(pipeline, action) for action in ("empty", "started"))
    # the model-quality job's line for a labelled day, of each task, and another pipeline's
    classified, regressed = (
        model_quality_line(tmp_path, pipeline, task) for task in ("classification", "regression")
    )
    other_quality = model_quality_line(tmp_path, f"{pipeline}-other", "classification")
    fields = {"RowsRead": "rows_read", "RowsRejected": "rows_rejected",
              "RowsScored": "rows_scored", "RejectedFraction": "rejected_fraction",
              "DriftScore": "drift_score", "PredictionCount": "count",
              "PredictionSum": "sum"}  # fmt: skip
    for metric, found in filters.items():
        (transformation,) = found["metricTransformations"]
        assert transformation["metricNamespace"] == "BatchInference/Quality"
        assert transformation["dimensions"] == {"PipelineName": "$.pipeline"}
        pattern = found["filterPattern"]
        assert len(pattern) <= 1024  # PutMetricFilter's limit
        publish = partial(metric_value, pattern, transformation["metricValue"])
        if metric in COST_METRICS:
            assert_cost_metric_reads_the_outcome_functions_line(found, pipeline, stage)
            continue
        if metric == "EmptyDays":
            assert found["logGroupName"] == f"/aws/lambda/{PROJECT}-{stage}-start-scheduled-run"
            assert (publish(empty), publish(started)) == (1, 0)
            assert publish(day_line(f"{pipeline}-other", "empty")) is None
            assert publish(measured) is None
            continue
        if metric in MODEL_QUALITY_FIELDS:
            assert found["logGroupName"] == "/aws/sagemaker/ProcessingJobs"
            field = MODEL_QUALITY_FIELDS[metric]
            for line in (classified, regressed):  # each task publishes what it measured
                assert publish(line) == json.loads(line).get(field)
            assert publish(other_quality) is None
            assert publish(measured) is None  # Preprocess's line is not the job's
            continue
        if metric.startswith("Prediction"):
            assert found["logGroupName"] == "/aws/sagemaker/TransformJobs"
            assert publish(predictions) == {"PredictionCount": 3, "PredictionSum": 1.5}[metric]
            assert publish(negative) == {"PredictionCount": 2, "PredictionSum": -2.5}[metric]
            assert publish(other_predictions) is None
            assert publish(measured) is None  # Preprocess's line is not a prediction line
            continue
        assert found["logGroupName"] == "/aws/sagemaker/ProcessingJobs"
        assert publish(measured) == json.loads(measured)[fields[metric]]
        assert metric_filters.matches(pattern, unmeasured) == (metric != "DriftScore")
        assert not metric_filters.matches(pattern, other)
        assert publish(predictions) is None
        assert not metric_filters.matches(pattern, "preprocess: 1 file(s), 50 rows read")
    alarms = {
        a["MetricName"]: a
        for a in aws.client("cloudwatch", stage).describe_alarms()["MetricAlarms"]
        if a["Namespace"] == "BatchInference/Quality"
    }
    assert sorted(alarms) == ["DriftScore", "QualityDrop", "RejectedFraction"]
    # the classification 20 % worse than registered, the regression that improved
    assert (metric_value(filters["QualityDrop"]["filterPattern"], "$.quality_drop", classified),
            metric_value(filters["QualityDrop"]["filterPattern"], "$.quality_drop", regressed),
    ) == (pytest.approx(0.2), pytest.approx((1.75**0.5 - 2) / 2))  # fmt: skip
    for metric, alarm in alarms.items():
        assert alarm["Dimensions"] == [{"Name": "PipelineName", "Value": pipeline}]
        assert alarm["Statistic"] == "Maximum"
        setting = {"DriftScore": "max_drift_score", "RejectedFraction": "max_rejected_fraction",
                   "QualityDrop": "max_quality_drop"}  # fmt: skip
        assert alarm["Threshold"] == values[setting[metric]]
    local = local_alarms.data_quality_alarms(
        values["max_rejected_fraction"], values["max_drift_score"]
    )
    local.append(quality_alarms.quality_drop_alarm(values["max_quality_drop"]))
    assert_local_alarms_are_the_templates(aws, stage, pipeline, local, filters)
    # every model-quality metric as local mode declares it is the filter the template made,
    # and local mode's alarm reads the job's line as CloudWatch would: 20 % worse is ALARM
    for declared in quality_alarms.METRICS:
        (transformation,) = filters[declared.name]["metricTransformations"]
        assert filters[declared.name]["filterPattern"] == declared.pattern_for(pipeline)
        assert transformation["metricValue"] == declared.value
    drop = quality_alarms.quality_drop_alarm(values["max_quality_drop"])
    assert local_alarms.state(drop, pipeline, [classified])[0] == "ALARM"
    assert local_alarms.state(drop, pipeline, [regressed])[0] == "OK"


def assert_local_alarms_are_the_templates(
    aws: Emulator,
    stage: str,
    pipeline: str,
    declared: list[local_alarms.LocalAlarm],
    filters: dict[str, Any],
) -> None:
    """Local mode's declaration of each alarm (local_mode/alarms.py) is what the template
    created: the alarm by its key, its metric's filter pattern and value, statistic,
    threshold, comparison and missing-data treatment, one period."""
    cloudwatch = aws.client("cloudwatch", stage)
    for alarm in declared:
        name = f"{PROJECT}-{stage}-batch-inference-{alarm.key.replace('_', '-')}"
        (created,) = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"]
        assert created["MetricName"] == alarm.metric.name
        assert created["Statistic"] == alarm.statistic
        assert created["Threshold"] == alarm.threshold
        assert created["ComparisonOperator"] == alarm.comparison
        assert created["TreatMissingData"] == alarm.treat_missing_data
        assert created["EvaluationPeriods"] == 1
        (transformation,) = filters[alarm.metric.name]["metricTransformations"]
        assert filters[alarm.metric.name]["filterPattern"] == alarm.metric.pattern_for(pipeline)
        assert transformation["metricValue"] == alarm.metric.value


def assert_freshness_alarms_read_the_printed_lines(aws: Emulator, stage: str, values: dict) -> None:
    """The deadline rule invokes the schedule's function with the wrapped Scheduled Event;
    the applied freshness filters and alarms are local mode's declarations
    (local_mode/freshness.py), and read the lines the function prints: each reason's metric
    is 1 on its reason's line and 0 on any other day's, the heartbeat's 1 on each run."""
    from datetime import date

    from stage_runtime import freshness

    pipeline = values["pipeline_name"]
    events, lambdas = aws.client("events", stage), aws.client("lambda", stage)
    function = lambdas.get_function(FunctionName=f"{PROJECT}-{stage}-start-scheduled-run")
    assert function["Configuration"]["Environment"]["Variables"]["SCORE_BY_HOURS"] == str(
        values["score_by_hours"]
    )
    deadline_rule = events.describe_rule(Name=f"{PROJECT}-{stage}-freshness")
    assert deadline_rule["ScheduleExpression"] == f"cron(0 {values['score_by_hours'] % 24} * * ? *)"
    (target,) = events.list_targets_by_rule(Rule=deadline_rule["Name"])["Targets"]
    assert target["Arn"] == function["Configuration"]["FunctionArn"]
    template = target["InputTransformer"]["InputTemplate"]
    assert template == '{"check": "freshness", "event": <aws.events.event>}'
    assert json.loads(template.replace("<aws.events.event>", "{}"))["check"] == freshness.CHECK
    assert target["DeadLetterConfig"]["Arn"].endswith("-batch-inference-dlq")
    logs = aws.client("logs", stage)
    filters = {
        f["metricTransformations"][0]["metricName"]: f
        for f in logs.describe_metric_filters(logGroupName=function_log_group(stage))[
            "metricFilters"
        ]
        if f["metricTransformations"][0]["metricNamespace"] == local_freshness.NAMESPACE
    }
    declared = {a.metric.name: a for a in local_freshness.late_alarms().values()}
    declared["ScheduleRuns"] = local_freshness.heartbeat_alarm()
    assert sorted(filters) == sorted(declared)
    alarms = {
        a["MetricName"]: a
        for a in aws.client("cloudwatch", stage).describe_alarms()["MetricAlarms"]
        if a["Namespace"] == local_freshness.NAMESPACE
    }
    assert sorted(alarms) == sorted(declared)
    assert_local_alarms_are_the_templates(aws, stage, pipeline, list(declared.values()), filters)
    for metric, alarm in alarms.items():  # what that check leaves out
        assert filters[metric]["metricTransformations"][0]["dimensions"] == {
            "PipelineName": "$.pipeline"
        }
        assert alarm["Dimensions"] == [{"Name": "PipelineName", "Value": pipeline}]
        assert len(alarm["AlarmDescription"]) <= 1024  # PutMetricAlarm's limit
    period = local_freshness.heartbeat_period(values["schedule_expression"])
    assert alarms["ScheduleRuns"]["Period"] == period
    assert {alarms[m]["Period"] for m in local_freshness.REASON_METRICS.values()} == {
        local_freshness.LATE_PERIOD
    }
    # the lines the function prints: a day of each reason, a scored day, another pipeline's
    day, hours = date(2026, 11, 1), values["score_by_hours"]
    late = {
        reason: freshness.line(pipeline, freshness.Verdict(day, reason, "why", None), hours)
        for reason in freshness.REASONS
    }
    scored = freshness.line(pipeline, freshness.Verdict(day, "scored", "3 rows", "Ok"), hours)
    other = freshness.line(
        f"{pipeline}-other", freshness.Verdict(day, freshness.RUN_FAILED, "why"), hours
    )
    heartbeat = freshness.heartbeat_line(pipeline, day, 3)
    for reason, metric in local_freshness.REASON_METRICS.items():
        publish = partial(
            metric_value, filters[metric]["filterPattern"], declared[metric].metric.value
        )
        assert [publish(late[r]) for r in freshness.REASONS] == [
            float(r == reason) for r in freshness.REASONS
        ]
        assert (publish(scored), publish(other), publish(heartbeat)) == (0, None, None)
        local = local_freshness.late_alarms()[reason]
        assert local_alarms.state(local, pipeline, [late[reason]])[0] == "ALARM"
        assert local_alarms.state(local, pipeline, [scored, other])[0] == "OK"
    beats = partial(metric_value, filters["ScheduleRuns"]["filterPattern"], "$.runs")
    assert (beats(heartbeat), beats(scored), beats(late[freshness.RUN_FAILED])) == (1, None, None)
    switch = local_freshness.heartbeat_alarm()
    assert local_alarms.state(switch, pipeline, [heartbeat])[0] == "OK"
    silent = local_alarms.state(switch, pipeline, [scored])  # missing data breaches
    assert silent[0] == "ALARM"


def function_log_group(stage: str) -> str:
    return f"/aws/lambda/{PROJECT}-{stage}-start-scheduled-run"


def assert_dashboard_shows_the_stage(aws: Emulator, stage: str, values: dict) -> None:
    """Every series is one AWS publishes or one of the stage's metric filters makes; one
    step-failure series per step; each job graph finds the jobs of its own step (named as
    Pipelines names them) and no other's."""
    body = json.loads(
        aws.client("cloudwatch", stage).get_dashboard(
            DashboardName=f"{PROJECT}-{stage}-batch-inference"
        )["DashboardBody"]
    )
    made_by_filters = {
        (t["metricNamespace"], t["metricName"]): frozenset(t["dimensions"])
        for f in quality_filters(aws, stage).values()
        for t in f["metricTransformations"]
    }
    assert undocumented(body, made_by_filters) == []
    quality_series = {
        s["metric"]: s["dimensions"]
        for s in series(body)
        if s["namespace"] == "BatchInference/Quality"
    }
    assert quality_series == {
        metric: {"PipelineName": values["pipeline_name"]} for _, metric in made_by_filters
    }
    definition = json.loads(
        aws.client("s3", stage)
        .get_object(Bucket=values["artifacts_bucket"], Key=values["pipeline_definition_s3_key"])[
            "Body"
        ]
        .read()
    )
    steps = {step["Name"]: step for step in definition["Steps"]}
    failed = [s["dimensions"] for s in series(body) if s["metric"] == "StepFailed"]
    assert sorted(d["StepName"] for d in failed) == sorted(steps)
    assert {d["PipelineName"] for d in failed} == {values["pipeline_name"]}
    searches = [s for s in series(body) if "phrase" in s]
    for name, step in steps.items():
        host = f"{job_name(step, 'x7k2m9q4w1z8')}/algo-1"
        matching = {s["namespace"] for s in searches if search_matches(s["phrase"], host)}
        namespace = f"/aws/sagemaker/{step['Type']}Jobs"
        assert matching == {namespace}, f"{name}'s jobs ({host}) are graphed by {matching}"
        graphed = {s["metric"] for s in searches if search_matches(s["phrase"], host)}
        assert "CPUUtilization" in graphed


def test_the_dashboard_checks_are_not_vacuous() -> None:
    """What the dashboard once had: a step metric without StepName, a Transform disk metric,
    and a job search on the project name, which Pipelines' default job names never hold."""
    transform_disk = (
        'SEARCH(\'{/aws/sagemaker/TransformJobs,Host} MetricName="DiskUtilization" '
        "\"churn\"', 'Maximum', 300)"
    )
    old = {
        "widgets": [
            {
                "properties": {
                    "metrics": [
                        ["AWS/Sagemaker/ModelBuildingPipeline", "StepFailed", "PipelineName", "p"],
                        [{"id": "t2", "expression": transform_disk}],
                    ]
                }
            }
        ]
    }
    assert len(undocumented(old)) == 2
    assert not search_matches("churn", "pipelines-x7k2m9q4w1z8-BatchTransform-ab12cd/i-0abc")
    assert search_matches("churn-preprod-transform", "churn-preprod-transform-x7k2-a1-0/i-0abc")
    assert not search_matches("churn-preprod-transform", "churn-preprod-preprocess-x7k2/algo-1")


# resources the stage gained after the module layout (#29): a stage deployed before it has
# none of them, and the upgrade's plan creates them where the rest is moved
ADDED_AFTER_THE_MODULE_LAYOUT = {
    "module.stage.aws_glue_catalog_database.predictions",
    "module.stage.aws_glue_catalog_table.predictions",
    "module.stage.aws_sagemaker_pipeline.quality",  # model quality with delayed labels (#32)
    "module.stage.aws_sagemaker_pipeline.shadow[0]",  # shadow runs before prod's gate (#33)
    # the freshness check (its alarms are instances of aws_cloudwatch_metric_alarm.stage)
    "module.stage.aws_cloudwatch_event_rule.freshness[0]",
    "module.stage.aws_cloudwatch_event_target.freshness[0]",
    "module.stage.aws_lambda_permission.freshness[0]",
    *(
        f'module.stage.aws_cloudwatch_log_metric_filter.freshness["{metric}"]'
        for metric in (*local_freshness.REASON_METRICS.values(), "ScheduleRuns")
    ),
}


def test_apply_plan_destroy_against_the_emulator(
    aws: Emulator, terraform: str, tmp_path: Path
) -> None:
    """The template applied for real by Terraform's AWS provider, to the stage's account:
    version 1, then version 2 over it (the second deployment), then destroyed.

    One cycle covers both stages' shapes: pre-prod's (run on upload, its functions and queues)
    with its base in subnets as prod's is (the model's VpcConfig sent). Prod's one other
    difference, no run on upload (none of those resources), is planned by the mock-provider
    test for prod; the endpoint and acceptance tests apply the template twice more."""
    stage = "preprod"
    values = promoted_tfvars(aws, stage, tmp_path, subnets=["subnet-0a"])
    assert values["previous_model"] is None  # a first deployment
    assert values["run_on_upload"] and values["subnet_ids"] == ["subnet-0a"]
    module = local_root("stage", tmp_path / "module")
    (module / "stage.tfvars.json").write_text(json.dumps(values))
    tf = in_account(terraform, aws, stage, module)

    tf("init")
    tf("apply", "-auto-approve", "-var-file=stage.tfvars.json")
    iam_review.check(tf, "stage", stage)  # parliament's and cloudsplaining's view

    events, sagemaker = aws.client("events", stage), aws.client("sagemaker", stage)
    rule = f"{PROJECT}-{stage}-batch-inference"
    assert events.describe_rule(Name=rule)["ScheduleExpression"] == values["schedule_expression"]
    lambdas = aws.client("lambda", stage)
    schedule = lambdas.get_function(FunctionName=f"{PROJECT}-{stage}-start-scheduled-run")
    (target,) = events.list_targets_by_rule(Rule=rule)["Targets"]
    assert target["Arn"] == schedule["Configuration"]["FunctionArn"]
    assert "RoleArn" not in target and "SageMakerPipelineParameters" not in target
    # only this rule and the deadline rule (the freshness check) may invoke the function
    grants = json.loads(lambdas.get_policy(FunctionName=target["Arn"])["Policy"])["Statement"]
    assert sorted(g["Condition"]["ArnLike"]["AWS:SourceArn"] for g in grants) == sorted(
        events.describe_rule(Name=name)["Arn"] for name in (rule, f"{PROJECT}-{stage}-freshness")
    )
    assert all(g["Principal"] == {"Service": "events.amazonaws.com"} for g in grants)
    scheduled = schedule["Configuration"]["Environment"]["Variables"]
    parameters = json.loads(scheduled["PIPELINE_PARAMETERS"])
    assert parameters["ModelName"] == values["model_name"]
    assert parameters["TransformInstanceCount"] == str(values["transform_instance_count"])
    assert "InputDataUrl" not in parameters and "OutputDataUrl" not in parameters  # per day
    assert (scheduled["PIPELINE_NAME"], scheduled["PARTITION_FORMAT"]) == (
        values["pipeline_name"], values["partition_format"],
    )  # fmt: skip
    assert schedule["Configuration"]["Role"] == values["upload_starter_role_arn"]
    # moto keeps no DeadLetterConfig: the request the provider sent must carry it
    (created,) = [
        body
        for body in rest_request_bodies(module / "provider.log", "Lambda", "CreateFunction")
        if body["FunctionName"].endswith("-start-scheduled-run")
    ]
    assert created["DeadLetterConfig"]["TargetArn"].endswith("-batch-inference-dlq")
    assert problems(Request("lambda", "CreateFunction", created)) == []  # botocore's model
    pipeline = sagemaker.describe_pipeline(PipelineName=values["pipeline_name"])
    assert pipeline["PipelineName"] == scheduled["PIPELINE_NAME"]
    # the predictions table, read back: each day projected from the Publish step's folders
    table = aws.client("glue", stage).get_table(
        DatabaseName=f"{PROJECT}_{stage}".replace("-", "_"), Name="predictions"
    )["Table"]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert table["Parameters"]["storage.location.template"] == (
        f"{values['predictions_table_url']}day=${{day}}/"
    )
    assert [k["Name"] for k in table["PartitionKeys"]] == ["day"]
    assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == [
        c["name"] for c in values["predictions_table_columns"]
    ]
    # a run that ends invokes the run-outcome function, for this pipeline only
    ended_rule = events.describe_rule(Name=f"{PROJECT}-{stage}-run-ended")
    quality = sagemaker.describe_pipeline(PipelineName=values["quality_pipeline_name"])
    assert json.loads(ended_rule["EventPattern"])["detail"]["pipelineArn"] == [
        pipeline["PipelineArn"], quality["PipelineArn"],
    ]  # fmt: skip
    # the model-quality pipeline's definition (build.py's, the key the template applies): one
    # Evaluate step whose line names the scoring pipeline (the metric filters' dimension)
    quality_key = values["quality_pipeline_definition_s3_key"]
    quality_definition = (
        aws.client("s3", stage)
        .get_object(Bucket=values["artifacts_bucket"], Key=quality_key)["Body"]
        .read()
    )
    (evaluate_step,) = json.loads(quality_definition)["Steps"]
    arguments = evaluate_step["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--pipeline-name") + 1] == values["pipeline_name"]
    assert_the_shadow_pipeline_differs_only_by_its_role(aws, stage, values)
    shadow = sagemaker.describe_pipeline(PipelineName=values["shadow_pipeline_name"])
    assert (
        shadow["PipelineArn"] not in json.loads(ended_rule["EventPattern"])["detail"]["pipelineArn"]
    )  # a shadow run ends without the run-outcome function: no marker of the champion's
    (ended_target,) = events.list_targets_by_rule(Rule=ended_rule["Name"])["Targets"]
    outcome = lambdas.get_function(FunctionName=f"{PROJECT}-{stage}-record-run-outcome")
    assert ended_target["Arn"] == outcome["Configuration"]["FunctionArn"]
    assert outcome["Configuration"]["Handler"] == "record_run_outcome.handler"
    (grant,) = json.loads(lambdas.get_policy(FunctionName=ended_target["Arn"])["Policy"])[
        "Statement"
    ]
    assert grant["Condition"]["ArnLike"]["AWS:SourceArn"] == ended_rule["Arn"]
    model = sagemaker.describe_model(ModelName=values["model_name"])
    assert model["PrimaryContainer"]["ModelPackageName"] == values["model_package_arn"]
    # moto keeps no VpcConfig: the request carried the stage's subnets, as AWS's model allows
    (create_model,) = [
        r for r in logged_requests(module / "provider.log") if r.operation == "CreateModel"
    ]
    assert create_model.body["VpcConfig"]["Subnets"] == values["subnet_ids"]
    assert create_model.body["EnableNetworkIsolation"] is True
    assert problems(create_model) == []
    functions = [
        f
        for f in lambdas.list_functions()["Functions"]
        if f["FunctionName"].endswith("-upload-run")
    ]
    (function,) = functions
    assert function["Role"] == values["upload_starter_role_arn"]
    environment = function["Environment"]["Variables"]
    assert environment["PIPELINE_NAME"] == values["pipeline_name"]
    assert json.loads(environment["PIPELINE_PARAMETERS"]) == {
        **parameters, "OutputDataUrl": values["output_data_url"],
    }  # fmt: skip
    (mapping,) = aws.client("lambda", stage).list_event_source_mappings(
        FunctionName=function["FunctionArn"]
    )["EventSourceMappings"]
    assert mapping["EventSourceArn"].endswith("-batch-inference-uploads.fifo")
    assert mapping["BatchSize"] == 1
    assert_dashboard_shows_the_stage(aws, stage, values)
    assert_quality_metrics_read_the_printed_line(aws, stage, values, tmp_path)
    assert_freshness_alarms_read_the_printed_lines(aws, stage, values)
    # ...as the provider sent them (moto validates neither): botocore's model takes the deadline
    # rule's target with its input transformer, and each freshness metric filter
    sent = logged_requests(module / "provider.log")
    (deadline_target,) = [
        r for r in sent if r.operation == "PutTargets" and r.body["Rule"].endswith("-freshness")
    ]
    (sent_target,) = deadline_target.body["Targets"]
    assert "<aws.events.event>" in sent_target["InputTransformer"]["InputTemplate"]
    freshness_filters = [
        r for r in sent if r.operation == "PutMetricFilter" and "Late" in r.body["filterName"]
    ]
    assert len(freshness_filters) == len(local_freshness.REASON_METRICS)
    assert [problems(r) for r in [deadline_target, *freshness_filters]] == [[]] * 5
    # deploying writes one IAM policy, the execution role's image pulls (the roles are the
    # base infrastructure's): every pull its jobs and model make, nothing else
    state = managed_resources(json.loads(tf("show", "-json").stdout))
    assert [r["address"] for r in state if r["type"].startswith("aws_iam_")] == [
        "module.stage.aws_iam_role_policy.pull_images"
    ]
    assert_the_stage_may_pull_what_it_runs(aws, stage, values)
    after_apply = planned_changes(tf)
    assert unexpected_drift(after_apply, EMULATOR_DRIFT) == {}

    # A stage deployed before terraform/stage existed (or before its alarms were one
    # resource) holds every resource at its old address: each moved back there, by the
    # template's own moved blocks read backwards, the plan only moves them back, and wants
    # of each exactly what it wanted before (the emulator's known drift; nothing replaced
    # or destroyed that was not before).
    earlier = {
        r["address"]: address_before(r["address"], moved_blocks())
        for r in state
        if r["address"] not in ADDED_AFTER_THE_MODULE_LAYOUT  # no old address to move from
    }
    assert all(old != new and not old.startswith("module.") for new, old in earlier.items())
    for new, old in earlier.items():
        tf("state", "mv", new, old)
    plan = planned_changes(tf)
    moves = {c["address"]: c for c in plan["resource_changes"] if c.get("previous_address")}
    assert {c["previous_address"]: address for address, c in moves.items()} == {
        old: new for new, old in earlier.items()
    }
    wanted = {c["address"]: c["change"]["actions"] for c in after_apply["resource_changes"]}
    assert {address: c["change"]["actions"] for address, c in moves.items()} == {
        address: wanted[address] for address in moves
    }
    assert unexpected_drift(plan, EMULATOR_DRIFT) == {}

    # A run starts with version 1 (the schedule's parameters) and is still in Preprocess...
    in_flight = parameters["ModelName"]
    # ...when version 2 is approved, promoted and deployed: the second deployment.
    dev = DevRegistry(aws, create=False)
    dev.register("Approved")
    second = promote_next(stage, tmp_path)
    assert second["model_version"] == values["model_version"] + 1
    assert second["previous_model"] == {
        "model_name": values["model_name"],
        "model_package_arn": values["model_package_arn"],
        "source_model_package_arn": values["source_model_package_arn"],
        "model_version": values["model_version"],
    }
    assert second["pipeline_definition_s3_key"] != values["pipeline_definition_s3_key"]
    (module / "stage.tfvars.json").write_text(json.dumps(second))
    tf("apply", "-auto-approve", "-var-file=stage.tfvars.json")

    redeployed = lambdas.get_function(FunctionName=target["Arn"])["Configuration"]
    parameters = json.loads(redeployed["Environment"]["Variables"]["PIPELINE_PARAMETERS"])
    assert parameters["ModelName"] == second["model_name"]
    # the updates sent version 2's definition locations (the stage's and the shadow's), and
    # nothing AWS would refuse beside them
    sent = logged_requests(module / "provider.log")
    updates = [r.body for r in sent if r.operation == "UpdatePipeline"]
    assert sorted(updates, key=lambda body: body["PipelineName"]) == [
        {
            "PipelineName": second[name],
            "PipelineDefinitionS3Location": {
                "Bucket": second["artifacts_bucket"],
                "ObjectKey": second[key],
            },
        }
        for name, key in (
            ("pipeline_name", "pipeline_definition_s3_key"),
            ("shadow_pipeline_name", "shadow_pipeline_definition_s3_key"),
        )
    ]
    assert_the_shadow_pipeline_differs_only_by_its_role(aws, stage, second)
    definition = sagemaker.describe_pipeline(PipelineName=second["pipeline_name"])
    assert second["model_name"] in definition["PipelineDefinition"]  # version 2's definition
    # the run in flight reaches BatchTransform: its model still resolves, artifact and all
    spec = resolve_model(sagemaker, in_flight)
    assert spec.model_data_url.startswith(f"s3://{values['artifacts_bucket']}/")
    assert (
        spec.model_data_url
        == (
            sagemaker.describe_model_package(ModelPackageName=values["model_package_arn"])[
                "InferenceSpecification"
            ]["Containers"][0]["ModelDataUrl"]
        )
    )
    # the third plan: nothing to do (no pipeline_definition -> null, which AWS would refuse)
    assert unexpected_drift(planned_changes(tf), AFTER_REAPPLY_DRIFT) == {}

    # version 3: version 1's model goes, version 2's stays for runs started before
    dev.register("Approved")
    third = promote_next(stage, tmp_path)
    assert third["previous_model"]["model_name"] == second["model_name"]
    (module / "stage.tfvars.json").write_text(json.dumps(third))
    tf("apply", "-auto-approve", "-var-file=stage.tfvars.json")
    models = {m["ModelName"] for m in sagemaker.list_models()["Models"]}
    assert models == {second["model_name"], third["model_name"]}

    tf("destroy", "-auto-approve", "-var-file=stage.tfvars.json")
    sent = logged_requests(module / "provider.log")
    assert {r.operation for r in sent} >= {"CreatePipeline", "PutRule", "PutTargets", "CreateModel"}
    assert refused_requests(module / "provider.log") == []
    assert events.list_rules(NamePrefix=rule)["Rules"] == []
    assert sagemaker.list_pipelines()["PipelineSummaries"] == []
    assert sagemaker.list_models()["Models"] == []


def deployed_definition(described: Mapping[str, Any]) -> Any:
    """A pipeline's definition as DescribePipeline returns it: AWS's JSON text; moto 5.2.5
    returns the Python form of what it read from the S3 location."""
    text = described["PipelineDefinition"]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return ast.literal_eval(text)


def assert_the_shadow_pipeline_differs_only_by_its_role(
    aws: Emulator, stage: str, values: dict
) -> None:
    """The shadow pipeline as deployed: the stage pipeline's definition, every job of it
    that runs as the execution role running as the shadow role instead, and the pipeline
    itself run as the shadow role; nothing else differs."""
    sagemaker, s3 = aws.client("sagemaker", stage), aws.client("s3", stage)
    stage_pipeline = sagemaker.describe_pipeline(PipelineName=values["pipeline_name"])
    shadow = sagemaker.describe_pipeline(PipelineName=values["shadow_pipeline_name"])
    execution, shadow_role = values["sagemaker_role_arn"], values["shadow_role_arn"]
    assert (stage_pipeline["RoleArn"], shadow["RoleArn"]) == (execution, shadow_role)
    assert execution != shadow_role
    text = (
        s3.get_object(Bucket=values["artifacts_bucket"], Key=values["pipeline_definition_s3_key"])[
            "Body"
        ]
        .read()
        .decode()
    )
    assert deployed_definition(stage_pipeline) == json.loads(text)
    # Preprocess and Publish, the Processing jobs, are where the role appears, as RoleArn
    assert text.count(f'"RoleArn": "{execution}"') == text.count(execution) >= 2
    assert deployed_definition(shadow) == json.loads(text.replace(execution, shadow_role))
    assert deployed_definition(shadow) != json.loads(text)


def assert_the_stage_may_pull_what_it_runs(aws: Emulator, stage: str, values: dict) -> None:
    """The pulls of the deployed model's images and the pipeline's processing image, as
    the execution role (the token call is the base infrastructure's), are granted by the
    policy the template wrote; and nothing else is."""
    sagemaker = aws.client("sagemaker", stage)
    model = sagemaker.describe_model(ModelName=values["model_name"])
    package = sagemaker.describe_model_package(
        ModelPackageName=model["PrimaryContainer"]["ModelPackageName"]
    )
    role = values["sagemaker_role_arn"].rsplit("/", 1)[1]
    policy = policy_document(
        aws.client("iam", stage).get_role_policy(
            RoleName=role, PolicyName="pull-the-stages-images"
        )["PolicyDocument"]
    )
    pulls = image_pulls(pulled_images(aws, stage, package, values))
    token = {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"}
    granted = {"Statement": [*policy["Statement"], token]}
    account = ACCOUNTS[stage]
    assert missing_permissions(pulls, granted, REGION, account) == []
    assert missing_permissions(pulls, {"Statement": [token]}, REGION, account)
    (statement,) = policy["Statement"]
    assert sorted(statement["Resource"]) == sorted(values["image_repository_arns"])


def test_the_request_check_refuses_what_aws_refuses() -> None:
    """The check above is not vacuous: the update provider 5.100 sends for a pipeline whose
    definition was read back (#38259), a 65-character rule name, an unknown enum."""
    refused = [
        Request(
            "sagemaker",
            "UpdatePipeline",
            {
                "PipelineName": "p",
                "PipelineDefinition": "",
                "PipelineDefinitionS3Location": {"Bucket": "b", "ObjectKey": "k"},
            },
        ),
        Request("events", "PutRule", {"Name": "r" * 65, "ScheduleExpression": "rate(1 day)"}),
        Request("events", "PutRule", {"Name": "r", "State": "SOMETIMES"}),
    ]
    assert [bool(problems(r)) for r in refused] == [True, True, True]
    assert problems(Request("events", "PutRule", {"Name": "r" * 64, "State": "ENABLED"})) == []


def apply_failing(terraform: str, aws: Emulator, module: Path) -> str:
    """``terraform apply`` in the stage account that must fail: its error output."""
    variables = {**aws.credential_variables("preprod"), "TF_LOG_PROVIDER": "DEBUG"}
    variables["TF_LOG_PATH"] = str(module / "provider.log")
    with environment(variables):
        result = run_terraform(
            terraform, module, "apply", "-auto-approve", "-var-file=stage.tfvars.json"
        )
    assert result.returncode != 0, result.stdout
    return " ".join((result.stdout + result.stderr).split())  # Terraform wraps its messages


def test_the_real_time_endpoint_against_the_emulator(
    aws: Emulator, terraform: str, tmp_path: Path
) -> None:
    """The optional endpoint applied by the provider: its configuration serves the promoted
    model with data capture, the endpoint rolls back on its alarms; every request is checked
    against AWS's model. moto has no UpdateEndpoint: a later version's update is proven by
    the mock-provider test and the request model, and a rolled-back one through a proxy that
    answers it as AWS does after a rollback (tests/rollback_proxy.py)."""
    with ExitStack() as stack:
        check_the_real_time_endpoint(aws, terraform, tmp_path, stack)


def check_the_real_time_endpoint(
    aws: Emulator, terraform: str, tmp_path: Path, stack: ExitStack
) -> None:
    values = promoted_tfvars(aws, "preprod", tmp_path)
    # a fixed fleet (min = max): no scalable target, which this emulator cannot keep (moto
    # 5.2.5 lacks Application Auto Scaling's ListTagsForResource, which the provider calls
    # after each create and retries for minutes); scaling is proven by the mock-provider test
    values["endpoint"] = {
        "min_instance_count": 2,
        "max_instance_count": 2,
        "data_capture": {"sampling_percentage": 25},
        "alarm_on_no_invocations": True,
    }
    module = local_root("stage", tmp_path / "module")
    (module / "stage.tfvars.json").write_text(json.dumps(values))
    tf = in_account(terraform, aws, "preprod", module)
    tf("init")
    # SageMaker through a proxy that adds what AWS keeps and moto does not (the endpoint's
    # deployment configuration) and answers a later update as rolled back
    proxy = stack.enter_context(rolled_back_updates(aws.endpoint_url, ACCOUNTS["preprod"]))
    stack.enter_context(environment({"AWS_ENDPOINT_URL_SAGEMAKER": proxy.url}))
    tf("apply", "-auto-approve", "-var-file=stage.tfvars.json")

    sagemaker = aws.client("sagemaker", "preprod")
    name = f"{PROJECT}-preprod-realtime"
    endpoint = sagemaker.describe_endpoint(EndpointName=name)
    assert endpoint["EndpointStatus"] == "InService"
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["EndpointConfigName"].startswith(f"{PROJECT}-preprod-v{values['model_version']}-")
    assert config.get("KmsKeyId") == values["kms_key_arn"]  # the stage's key, or none
    (variant,) = config["ProductionVariants"]
    assert (variant["VariantName"], variant["ModelName"], variant["InitialInstanceCount"]) == (
        "AllTraffic", values["model_name"], 2,
    )  # fmt: skip
    capture = config["DataCaptureConfig"]
    assert capture["DestinationS3Uri"] == (
        f"s3://{values['artifacts_bucket']}/{PROJECT}/data-capture/preprod"
    )
    assert capture["InitialSamplingPercentage"] == 25
    scaling: Any = aws.account("preprod").client("application-autoscaling")  # no stubs
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
    alarms = aws.client("cloudwatch", "preprod").describe_alarms(
        AlarmNamePrefix=f"{PROJECT}-preprod-endpoint-"
    )["MetricAlarms"]
    assert {a["MetricName"] for a in alarms} == {
        "Invocation5XXErrors", "ModelLatency", "Invocations",
    }  # fmt: skip
    dashboard = aws.client("cloudwatch", "preprod").get_dashboard(
        DashboardName=f"{PROJECT}-preprod-batch-inference"
    )
    assert f"Endpoint {name}: invocations and errors" in dashboard["DashboardBody"]

    # what moto keeps nothing of, checked in the requests the provider sent
    sent = logged_requests(module / "provider.log")
    (created,) = [r.body for r in sent if r.operation == "CreateEndpoint"]
    rollback = created["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
    assert {a["AlarmName"] for a in rollback} == {
        f"{PROJECT}-preprod-endpoint-errors", f"{PROJECT}-preprod-endpoint-latency",
    }  # fmt: skip
    routing = created["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": 300,
        "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
    }
    (latency,) = [a for a in alarms if a["MetricName"] == "ModelLatency"]
    assert (latency["ExtendedStatistic"], latency["Threshold"]) == ("p99", 1_000_000.0)
    assert {d["Name"]: d["Value"] for d in latency["Dimensions"]} == {
        "EndpointName": name, "VariantName": "AllTraffic",
    }  # fmt: skip

    # Version 2's blue/green update, rolled back by SageMaker (tests/rollback_proxy.py): the
    # apply fails, the endpoint keeps serving version 1 from a configuration and model that
    # still exist, and the deployment record still names version 1.
    record_key = f"{PROJECT}/deployments/preprod/deployed-model.json"
    s3 = aws.client("s3", "preprod")
    before = s3.get_object(Bucket=values["artifacts_bucket"], Key=record_key)["Body"].read()
    DevRegistry(aws, create=False).register("Approved")
    second = {**promote_next("preprod", tmp_path), "endpoint": values["endpoint"]}
    (module / "stage.tfvars.json").write_text(json.dumps(second))
    rolled_back = apply_failing(terraform, aws, module)
    assert proxy.rolled_back == [name]
    old_config = endpoint["EndpointConfigName"]
    assert f"The endpoint {name} still serves {old_config}, not the new" in rolled_back
    assert "SageMaker rolled the update back" in rolled_back
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == old_config
    assert sagemaker.describe_endpoint_config(EndpointConfigName=old_config)
    assert sagemaker.describe_model(ModelName=values["model_name"])
    assert s3.get_object(Bucket=values["artifacts_bucket"], Key=record_key)["Body"].read() == before

    tf("destroy", "-auto-approve", "-var-file=stage.tfvars.json")
    assert refused_requests(module / "provider.log") == []
    assert sagemaker.list_endpoints()["Endpoints"] == []
    assert sagemaker.list_endpoint_configs()["EndpointConfigs"] == []


def test_a_request_logged_in_64_kib_pieces_is_read_whole(tmp_path: Path) -> None:
    """Terraform logs a provider line over 64 KiB in pieces, each under its own prefix and
    raw (not as fields): a Lambda CreateFunction whose zip is 48 KB is one. The pieces are
    joined back, so its body (and a JSON-protocol request's) is still read and checked."""
    prefix = "2026-12-07T11:56:53.414Z [DEBUG] provider.terraform-provider-aws_v5.100.0_x5: "
    zipped = "A" * 70_000
    function = {"FunctionName": "f", "ZipFile": zipped, "DeadLetterConfig": {"TargetArn": "q"}}
    queue = {"QueueName": "q", "Padding": "x" * 100_000}
    lines = []
    for fields in (
        {"rpc.service": "Lambda", "rpc.method": "CreateFunction",
         "http.request.body": json.dumps(function) + "\n[truncated...]"},
        {"rpc.service": "SQS", "rpc.method": "CreateQueue",
         "http.request.header.x_amz_target": "AmazonSQS.CreateQueue",
         "http.request.body": json.dumps(queue)},
    ):  # fmt: skip
        line = json.dumps({"@level": "debug", "@message": "HTTP Request Sent", **fields})
        lines += [prefix + line[i : i + 65536] for i in range(0, len(line), 65536)]
    log = tmp_path / "provider.log"
    log.write_text(prefix + "other\n" + "\n".join(lines) + "\n" + prefix + "[DEBUG] after\n")
    assert rest_request_bodies(log, "Lambda", "CreateFunction") == [function]
    (created,) = logged_requests(log)
    assert (created.service, created.operation, created.body) == ("sqs", "CreateQueue", queue)
    assert 'Unknown parameter in input: "Padding"' in problems(created)[0]  # still checked
