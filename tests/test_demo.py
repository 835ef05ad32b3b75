"""The demo end to end: accounts, promotion, local runs in both stages, idempotent re-deploy."""

from __future__ import annotations

import csv
import json
import tarfile
from datetime import timedelta
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from examples import demo, training
from examples.breast_cancer import data
from examples.catalog import EXAMPLES
from examples.ticket_triage import inference
from local_mode import table
from local_mode.emulator import ACCOUNTS

ROWS = 3000


def test_demo_scores_every_valid_row_with_the_real_model(tmp_path: Path, capsys) -> None:
    report = demo.run(rows=ROWS, assume_yes=True, workdir=tmp_path, drift=True)
    assert set(report["stages"]) == {"preprod", "prod"}
    # the smoke run the prod reviewer reads: the stage file's 40 rows, 2 of them malformed
    smoke = report["smoke"]["preprod"]
    assert smoke.status == "Succeeded" and smoke.passed
    assert (smoke.rows_in, smoke.rows_rejected, smoke.rows_scored) == (40, 2, 38)
    assert set(report["smoke"]) == {"preprod"}  # prod names no smoke input
    # the model was checked in its image's runtime twin before each stage's model existed
    checked = report["checked"]
    assert checked["preprod"].checked and checked["preprod"].rows == 38  # the smoke rows
    assert checked["prod"].checked and checked["prod"].rows == 0  # no smoke input: start only
    assert checked["preprod"].warnings == checked["prod"].warnings == []
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        archive.extract("model.joblib", tmp_path / "model", filter="data")
    model = joblib.load(tmp_path / "model" / "model.joblib")
    with tarfile.open(tmp_path / "degraded" / "model.tar.gz") as archive:
        archive.extract("model.joblib", tmp_path / "degraded-model", filter="data")
    degraded_model = joblib.load(tmp_path / "degraded-model" / "model.joblib")
    # the registered quality: the holdout's AUC (model.py's split), measured here again
    features, targets = load_breast_cancer(return_X_y=True)
    _, x_test, _, y_test = train_test_split(
        features, targets, test_size=0.2, random_state=0, stratify=targets
    )
    holdout_auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert report["model_quality"]["degraded"].holdout_auc < 0.6  # chance, on its own holdout

    for stage, result in report["stages"].items():
        tfvars, record = result["tfvars"], result["record"]
        assert record["PipelineExecutionStatus"] == "Succeeded"
        assert tfvars["model_package_arn"].split(":")[4] == ACCOUNTS[stage]
        assert tfvars["model_version"] == 1  # prod got exactly what preprod got
        # the training baseline travelled with the package, into the stage's own bucket
        assert result["baseline"].startswith(f"s3://{tfvars['artifacts_bucket']}/")
        assert result["baseline"].endswith("/baseline.json")
        counts, generated = record["Counts"], record["Generated"]
        # the run's quality, from the line the metric filters read: the training distribution
        metrics = counts["metrics"]  # one line per instance; an instance may get no object
        assert len(metrics) == tfvars["processing_instance_count"]
        assert {(m["gate"], m["pipeline"]) for m in metrics} == {
            ("passed", tfvars["pipeline_name"])
        }
        assert all(m["drift_score"] < 0.1 for m in metrics if m["rows_written"])
        assert sum(m["rows_read"] for m in metrics) == counts["rows_in"]
        # --drift: the size features grew by half; each stage's gate acts in its own mode
        drifted = result["drifted"]
        assert drifted["mode"] == tfvars["quality_gate_mode"]
        if drifted["mode"] == "fail":
            assert drifted["verdict"] == "failed"
            assert [s["StepName"] for s in drifted["record"]["Steps"]] == ["Preprocess"]
            assert "quality gate failed, nothing scored: DriftScore" in drifted["reason"]
            worst = drifted["reason"].split("(worst features by PSI: ")[1]
            assert worst.split(" ")[0] in data.DRIFTED_FEATURES
            # the stopped job's metric line still reaches the metrics (and the alarm)
            (stopped,) = [
                m for m in drifted["record"]["Steps"][0]["Outcome"]["Metrics"] if m["rows_read"]
            ]
            assert (stopped["gate"], stopped["rows_scored"]) == ("failed", 0)
            assert stopped["drift_score"] > 0.25
        else:
            assert drifted["verdict"] == "warned" and drifted["metric"]["drift_score"] > 0.25
            assert drifted["metric"]["rows_scored"] == drifted["metric"]["rows_written"] > 0
            assert drifted["alarm"][0] == "ALARM"  # the stage's drift alarm, evaluated locally
        assert counts["rows_in"] == ROWS
        # each run's HTML report (tests/test_report.py opens one in a browser)
        assert Path(record["Report"]).read_text().count("<section>") == 5  # with predictions
        assert Path(drifted["record"]["Report"]).is_file()
        assert counts["rows_rejected"] == generated["malformed"] > 0
        assert counts["rows_scored"] == ROWS - generated["malformed"]

        # every valid input row has exactly one prediction line: its id and the model's output
        with (tmp_path / f"{stage}-input.csv").open(newline="") as handle:
            rows = [r for r in csv.DictReader(handle)]
        valid = {}
        for row in rows:
            try:
                valid[row["record_id"]] = [float(v) for k, v in row.items() if k != "record_id"]
            except (TypeError, ValueError):
                continue
        (local_copy,) = counts["local_predictions"]
        with open(local_copy, newline="") as handle:
            lines = list(csv.reader(handle))
        assert len(lines) == len(valid) == counts["rows_scored"]
        ids = [line[0] for line in lines]
        assert set(ids) == set(valid)
        expected = model.predict_proba(np.array([valid[i] for i in ids]))[:, 1]
        assert np.allclose([float(line[1]) for line in lines], expected, rtol=0, atol=1e-12)
        assert all(len(line) == 2 for line in lines)  # id and prediction, no feature leaks
        # the same model served on loopback answers the first scored row as the batch did
        served = result["served"]
        assert [served["id"], served["batch"]] == lines[0]
        assert float(served["served"]) == model.predict_proba([valid[served["id"]]])[0, 1]
        assert (tmp_path / f"{stage}-model" / "environment.json").is_file()  # for make serve
        # the handlers' metric lines (PredictionCount, PredictionSum on AWS): every prediction
        # counted once, their sum the predictions' (6 decimals per request)
        predicted = counts["prediction_metrics"]
        assert {m["pipeline"] for m in predicted} == {tfvars["pipeline_name"]}
        assert sum(m["count"] for m in predicted) == len(lines)
        assert sum(m["sum"] for m in predicted) == pytest.approx(expected.sum(), abs=1e-5)
        # yesterday's partition, as the schedule scores it: once, then skipped by its marker
        day = result["day"]
        with (tmp_path / f"{stage}-input.csv").open(newline="") as handle:
            head = [line for _, line in zip(range(demo.DAY_ROWS + 1), handle, strict=False)]
        marker = day["marker"]
        assert (marker["status"], marker["execution_arn"]) == (
            "Succeeded", day["first"].execution_arn,
        )  # fmt: skip
        assert marker["rows_read"] == len(list(csv.reader(head))) - 1 == demo.DAY_ROWS
        assert marker["rows_read"] == marker["rows_rejected"] + marker["rows_scored"]
        assert marker["rows_scored"] > 0 and day["again"].action == "skipped"
        assert marker["partition"] == f"dt={day['day'].isoformat()}"
        # what each run cost (#32): the record's and the day's marker's, from their jobs
        for cost, rows in ((record["Cost"], counts["rows_scored"]),
                           (marker["cost"], marker["rows_scored"])):  # fmt: skip
            assert [s["step"] for s in cost["steps"]] == ["Preprocess", "BatchTransform", "Publish"]
            assert all(s["usd"] > 0 and s["seconds"] > 0 for s in cost["steps"])
            assert cost["total_usd"] == pytest.approx(
                sum(s["usd"] for s in cost["steps"]), abs=1e-6
            )
            assert cost["rows_scored"] == rows
            assert cost["cost_per_1000_rows"] == round(cost["total_usd"] * 1000 / rows, 6)
            assert cost["prices"]["verified"] is False
        assert "<h2>Cost</h2>" in Path(record["Report"]).read_text(encoding="utf-8")
        # the same rows as Parquet and JSON Lines on the days before: the same answers in the
        # stage's predictions table (the demo compares them id by id and fails otherwise)
        formats = result["formats"]
        assert formats["rows"] == marker["rows_scored"]
        assert [formats["days"][k] for k in ("csv", "parquet", "jsonl")] == [
            day["day"] - timedelta(days=n) for n in (0, 1, 2)
        ]
        # each day's freshness at its deadline: the day whose input never arrived (the
        # schedule marked it Empty) raises its alarm, yesterday (scored) does not, and
        # tonight's schedule run keeps the dead-man's switch OK
        fresh = result["freshness"]
        assert fresh["late"] == day["day"] - timedelta(days=demo.LATE_DAY - 1)
        assert fresh["yesterday"] == day["day"]
        late = fresh["checked"][fresh["late"]]
        assert (late["answer"]["reason"], late["answer"]["late"]) == ("input-never-arrived", True)
        assert late["alarm"] == f"ALARM ({fresh['late']}: input-never-arrived)"
        assert fresh["checked"][day["day"]]["alarm"] == f"OK ({day['day']}: scored)"
        assert fresh["switch"][0] == "OK"
        # the batch run's rows in the table, each with the model version and the execution
        (today,) = counts["table_by_day"]
        assert today["rows"] == counts["rows_scored"] and today["model_versions"] == [1]

        # the day's delayed labels (the generator's true classes) measured against its
        # predictions, by the deployed model and then by the degraded one
        quality = result["quality"]
        data.generate(tmp_path / "again.csv", ROWS, labels_path=tmp_path / "truth.csv")
        with (tmp_path / "truth.csv").open(newline="") as handle:
            truth = {r["record_id"]: int(r["label"]) for r in csv.DictReader(handle)}
        day_ids = [line.split(",", 1)[0] for line in head[1:]]
        scored_ids = [i for i in day_ids if i in valid]
        assert len(scored_ids) == marker["rows_scored"]
        y_day = [truth[i] for i in scored_ids]
        x_day = np.array([valid[i] for i in scored_ids])
        limit = tfvars["max_quality_drop"]
        for kind, scorer in (("deployed", model), ("degraded", degraded_model)):
            evaluation = quality[kind]
            measured = evaluation["model_quality"]
            auc = roc_auc_score(y_day, scorer.predict_proba(x_day)[:, 1])
            assert measured["metrics"]["auc"] == pytest.approx(auc, abs=1e-9)
            assert measured["registered"] == pytest.approx(holdout_auc, abs=1e-12)
            assert measured["quality_drop"] == pytest.approx((holdout_auc - auc) / holdout_auc)
            assert measured["coverage"]["labels"] == demo.DAY_ROWS  # malformed rows labelled too
            assert measured["coverage"]["matched"] == marker["rows_scored"]
            # the job's printed line, through the stage's alarm as CloudWatch would read it
            (line,) = evaluation["lines"]
            assert json.loads(line)["pipeline"] == tfvars["pipeline_name"]
            assert Path(evaluation["report"]).read_text().count("<section>") == 2
        assert quality["deployed"]["model_quality"]["verdict"] == "ok"
        assert quality["deployed"]["alarm"][0] == "OK"
        assert quality["degraded"]["model_quality"]["verdict"] == "degraded"
        assert quality["degraded"]["alarm"][0] == "ALARM"
        assert quality["degraded"]["model_quality"]["quality_drop"] > limit
        # the day's marker: the degraded run is the day's Succeeded one, and its evaluation
        # (a new one for the same labels: the scored execution changed) is recorded in it
        rescored = quality["degraded"]["run"]
        latest = quality["degraded"]["marker"]
        assert latest["execution_arn"] == rescored.execution_arn != marker["execution_arn"]
        assert (
            latest["model_quality"]["scored_execution"] == rescored.execution_arn.rsplit("/", 1)[-1]
        )
        assert latest["model_quality"]["status"] == "Succeeded"
        assert quality["deployed"]["execution_arn"] != quality["degraded"]["execution_arn"]
        day_rows = dict(zip(scored_ids, x_day, strict=True))  # the last stage's: prod's

    # the second version (#33): retrained, promoted to preprod, shadowed in prod on the days
    # version 1 scored, then approved and deployed to prod
    second = report["second"]
    assert second["version"] == 3  # dev: 1 the first, 2 the degraded (pending), 3 this one
    assert second["preprod"]["tfvars"]["model_version"] == 3
    assert second["preprod"]["smoke"].passed and second["preprod"]["checked"].rows == 38
    assert second["prod"]["tfvars"]["model_version"] == 3
    assert second["plan"]["model_version"] == 3  # the plan job's tfvars, written in plan/
    assert (tmp_path / "plan" / "prod.tfvars.json").is_file()
    with tarfile.open(tmp_path / "second" / "model.tar.gz") as archive:
        archive.extract("model.joblib", tmp_path / "second-model", filter="data")
    retrained = joblib.load(tmp_path / "second-model" / "model.joblib")
    shown = second["shadow"]
    champion = report["stages"]["prod"]
    # the plan's candidate (build.py --plan-only --shadow-candidate), gone once deployed
    candidate = shown["candidate"]
    assert candidate.name == "breast-cancer-classifier-prod-c3"
    assert candidate.tags["shadow"] == "true" and candidate.tags["model-version"] == "3"
    copies = f"s3://{champion['tfvars']['artifacts_bucket']}/breast-cancer/shadow-models/v3/"
    assert candidate.artifacts and all(uri.startswith(copies) for uri in candidate.artifacts)
    assert second["candidate_left"] == []
    yesterday = champion["day"]["day"]
    # the last three scored days: yesterday's CSV, and the same rows as Parquet and JSON Lines
    assert list(shown["days"]) == [str(yesterday - timedelta(days=n)) for n in (2, 1, 0)]
    # yesterday's marker named the degraded run (the quality demo's): scored again by v1
    restored = second["restored"]
    assert restored.action == "Succeeded"
    assert shown["days"][str(yesterday)]["executions"]["champion"] == restored.execution_arn
    ids = sorted(day_rows)
    x_rows = np.array([day_rows[i] for i in ids])
    before = model.predict_proba(x_rows)[:, 1] >= 0.5
    after = retrained.predict_proba(x_rows)[:, 1] >= 0.5
    for day, comparison in shown["days"].items():
        assert comparison["rows"]["both"] == len(ids) == champion["day"]["marker"]["rows_scored"]
        assert comparison["rows"]["champion_only"] == comparison["rows"]["candidate_only"] == 0
        decision = comparison["decision"]
        # the flips recomputed from the two models on the day's rows
        assert decision["flips"] == int((before != after).sum()) > 0, day
        assert decision["to_positive"] == int((after & ~before).sum())
        assert 0 < decision["flip_rate"] < 0.1  # a few percent: a retrained model, not a broken one
        assert comparison["gates"] == {"champion": "passed", "candidate": "passed"}
        assert comparison["outputs"]["prediction"]["psi"] < 0.25
    # everything the shadow wrote is under prod's _shadow/v3/ (the demo fails on any change
    # to the champion's objects: markers, outputs, table, definitions)
    root = f"{champion['tfvars']['output_data_url'].rstrip('/')}/_shadow/v3/"
    assert shown["written"] and all(uri.startswith(root) for uri in shown["written"])
    document = json.loads(shown["json"].read_text())
    assert document["days"] == json.loads(json.dumps(shown["days"]))
    assert shown["html"].read_text().count("<section><h2>") == len(shown["days"])  # a chart each
    # what the prod reviewer reads: prod's limit (0.2) met, production ids withheld
    reviewed = shown["summary"].read_text()
    assert reviewed.startswith("### prod: version 3 in the shadow of the champion\n")
    worst = max(c["decision"]["flip_rate"] for c in shown["days"].values())
    assert f"changes {worst:.2%} of its decisions, within the limit of 20.00%" in reviewed
    assert "ids withheld: shadow_show_ids is false" in reviewed

    assert report["redeploy"] == {
        stage: second[stage]["tfvars"]["model_package_arn"] for stage in ("preprod", "prod")
    }
    demo.print_summary(report)
    out = capsys.readouterr().out
    # the comparison is shown before the second version's approval is asked
    first_headline = out.index(f"    shadow {min(shown['days'])}: rows by both {len(ids)}, ")
    assert first_headline < out.index("==> manual approval: version 3 approved for prod")
    assert out.index("==> manual approval: version 1 approved") < first_headline
    assert f"    shadow page: {shown['html']}" in out
    assert "shadow candidate: created breast-cancer-classifier-prod-c3 (artifacts under " in out
    assert (
        f"rows in {ROWS}, rejected {report['stages']['prod']['record']['Counts']['rows_rejected']}"
        in out
    )
    assert "re-deploy: same packages, nothing copied" in out
    late = report["stages"]["prod"]["freshness"]["late"]
    assert f"  freshness alarm: ALARM ({late}: input-never-arrived) (deadline 6 h" in out
    assert "  dead-man's switch (schedule-silent): OK (ScheduleRuns Sum 1 " in out
    prod_cost = report["stages"]["prod"]["record"]["Cost"]["total_usd"]
    assert f"  run cost USD {prod_cost:.6f} (USD " in out and "unverified)" in out
    assert out.count("'s run cost USD ") == 2  # each stage's day
    day_cost = report["stages"]["prod"]["day"]["marker"]["cost"]
    assert (
        f"  dashboard's cost widget for that run: RunCost {day_cost['total_usd']}, "
        f"CostPer1000Rows {day_cost['cost_per_1000_rows']}"
    ) in out
    assert "`make serve STAGE=prod` serves it again" in out
    assert ": Succeeded, rows read 1000, rejected " in out and "; again: skipped" in out
    assert (
        f"  predictions: {report['stages']['prod']['record']['Counts']['rows_scored']} in " in out
    )
    assert "prod drifted batch: stopped before scoring. Step Preprocess failed:" in out
    assert "preprod drifted batch: scored, gate warn: drift score" in out
    for stage in ("preprod", "prod"):
        degraded = report["stages"][stage]["quality"]["degraded"]["model_quality"]
        assert (
            f"quality alarm: ALARM (AUC {degraded['metrics']['auc']:.3f}, registered "
            f"{degraded['registered']:.3f}, drop {degraded['quality_drop']:.2f} > 0.05)"
        ) in out
    assert out.count("    quality alarm: OK (AUC ") == 2


def test_without_approval_prod_is_not_deployed(tmp_path: Path, capsys) -> None:
    report = demo.run(rows=200, assume_yes=False, workdir=tmp_path)  # no terminal under pytest
    assert set(report["stages"]) == {"preprod"}
    assert "no terminal to ask on; run with --yes" in capsys.readouterr().out
    assert not (tmp_path / "prod.tfvars.json").exists()


def test_a_failing_stage_is_named_and_exits_non_zero(tmp_path: Path, capsys, monkeypatch) -> None:
    def broken_model(*args, **kwargs):
        raise demo.DemoFailed("model registration failed: registry unavailable")

    monkeypatch.setattr(demo, "register_model", broken_model)
    assert demo.main(["--rows", "10", "--workdir", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        "demo failed: model registration failed: registry unavailable"
    )


def test_the_second_example_goes_through_the_same_template(tmp_path: Path) -> None:
    """ticket-triage, another shape (string categories with nulls, a label and three class
    probabilities per row), deployed with only its own stage files, schema, handlers and
    baseline: every valid row is scored with every answer column, and the gate reads drift
    in its categories."""
    example = EXAMPLES["ticket-triage"]
    rows = 1500
    report = demo.run(rows=rows, assume_yes=True, workdir=tmp_path, drift=True, example=example)
    assert report["example"] == "ticket-triage" and set(report["stages"]) == {"preprod", "prod"}
    smoke = report["smoke"]["preprod"]  # its own smoke input: 40 rows, nulls among them
    assert (smoke.rows_in, smoke.rows_rejected, smoke.rows_scored) == (40, 0, 40)
    assert report["checked"]["preprod"].rows == 40 and report["checked"]["preprod"].warnings == []
    with tarfile.open(tmp_path / "model.tar.gz") as archive:
        archive.extract("model.joblib", tmp_path / "model", filter="data")
    pipeline = joblib.load(tmp_path / "model" / "model.joblib")
    features = json.loads(example.schema.read_text())["features"]

    for stage, result in report["stages"].items():
        tfvars, record = result["tfvars"], result["record"]
        counts, generated = record["Counts"], record["Generated"]
        assert tfvars["project_name"] == example.project
        execution = json.loads((tmp_path / f"{stage}-batch-execution.json").read_text())
        assert execution["PipelineExecutionStatus"] == "Succeeded"
        assert counts["rows_rejected"] == generated["malformed"] > 0
        assert counts["rows_scored"] == rows - generated["malformed"]
        with (tmp_path / f"{stage}-input.csv").open(newline="") as handle:
            by_id = {row.pop("ticket_id"): row for row in csv.DictReader(handle)}
        (local_copy,) = counts["local_predictions"]
        with open(local_copy, newline="") as handle:
            lines = list(csv.reader(handle))
        assert len(lines) == counts["rows_scored"]
        assert all(len(line) == 5 for line in lines)  # id, label, three probabilities
        body = "".join(
            ",".join(by_id[line[0]][f["name"]] for f in features) + "\n" for line in lines
        )
        expected = pipeline.predict_proba(inference.parse_features(body.encode(), features))
        answered = np.array([[float(v) for v in line[2:]] for line in lines])
        assert np.allclose(answered, expected, rtol=0, atol=1e-12)
        classes = list(pipeline.classes_)
        assert [line[1] for line in lines] == [classes[k] for k in expected.argmax(axis=1)]
        assert sum(by_id[line[0]]["channel"] == "" for line in lines) > 0  # nulls were scored
        served = result["served"]  # the endpoint answers the row's whole answer too
        assert [served["id"], *served["served"].split(",")] == lines[0]
        # the dashboard's mean is the mean confidence (each row's top probability)
        predicted = counts["prediction_metrics"]
        assert sum(m["sum"] for m in predicted) == pytest.approx(expected.max(axis=1).sum(), 1e-6)
        # the report draws the predicted classes against the baseline's
        assert Path(record["Report"]).read_text().count("<section>") == 5
        assert result["formats"]["rows"] == result["day"]["marker"]["rows_scored"] > 0
        table_rows = table.read(Path(counts["local_table"])).to_pylist()
        assert {r["ticket_id"] for r in table_rows} == {line[0] for line in lines}
        assert {(r["model_version"], r["execution_id"]) for r in table_rows} == {
            (1, record["PipelineExecutionArn"].rsplit("/", 1)[-1])
        }
        by_id = {r["ticket_id"]: r for r in table_rows}
        assert all(
            [by_id[line[0]][c] for c in ("priority", "p_low", "p_normal", "p_urgent")]
            == [line[1], *map(float, line[2:])]
            for line in lines
        )
        drifted = result["drifted"]
        if drifted["mode"] == "fail":
            worst = drifted["reason"].split("(worst features by PSI: ")[1].split(" ")[0]
            assert worst in ("channel", "message_length")
        else:
            assert drifted["verdict"] == "warned"
        assert "quality" not in result  # multi-class: no model-quality demo
    assert "multi-class" in report["model_quality"]["skipped"]
    # its second version (another sample of tickets), shadowed in prod: labels that change
    second = report["second"]
    assert second["version"] == 2 and "restored" not in second  # no degraded model here
    with tarfile.open(tmp_path / "second" / "model.tar.gz") as archive:
        archive.extract("model.joblib", tmp_path / "second-model", filter="data")
    retrained = joblib.load(tmp_path / "second-model" / "model.joblib")
    scored = {line[0] for line in lines}  # prod's batch (the loop's last stage)
    with (tmp_path / "prod-input.csv").open(newline="") as handle:
        day = [r for _, r in zip(range(demo.DAY_ROWS), csv.DictReader(handle), strict=False)]
    day = [row for row in day if row["ticket_id"] in scored]
    text = "".join(",".join(row[f["name"]] for f in features) + "\n" for row in day)
    rows = inference.parse_features(text.encode(), features)
    changed = int((pipeline.predict(rows) != retrained.predict(rows)).sum())
    for comparison in second["shadow"]["days"].values():
        assert comparison["rows"]["both"] == len(day)
        decision = comparison["decision"]
        assert (decision["kind"], decision["changed"]) == ("label", changed)
        assert 0 < decision["change_rate"] < 0.1


def test_an_example_without_a_degraded_model_refuses_degraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.ticket_triage import model

    with pytest.raises(SystemExit) as refused:
        training.main(["--output", str(tmp_path), "--degraded"], "d", model.train, model.package)
    assert refused.value.code == 2
    assert "--degraded: this example has no degraded model" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_a_model_is_either_degraded_or_retrained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from examples.breast_cancer import model

    with pytest.raises(SystemExit) as refused:
        training.main(
            ["--output", str(tmp_path), "--degraded", "--retrained"], "d", model.train,
            model.package, train_degraded=model.train, train_retrained=model.train,
        )  # fmt: skip
    assert refused.value.code == 2
    assert "--retrained: not allowed with argument --degraded" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_an_unknown_example_is_refused_with_the_ones_there_are(capsys) -> None:
    with pytest.raises(SystemExit) as refused:
        demo.main(["--example", "not-an-example"])
    assert refused.value.code == 2
    assert "choose from 'breast-cancer', 'ticket-triage'" in capsys.readouterr().err
