"""The examples the template ships, each deployed by the same template with its own files.

An example is a model a team could own: its package (``data``: batch input; ``model``:
``build`` trains and packages it in the image's runtime twin, with ``inference.py`` its
handlers), its feature schema, its two stage files and its smoke input. ``make demo
DEMO_ARGS="--example NAME"`` takes one through the whole flow; nothing else in the template
knows which example it runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from pipelines.batch_inference import publish

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Example:
    name: str
    package: str  # examples.<name>: its data and model modules
    project: str  # the SageMaker project name, and the prefix of every resource
    group: str  # the dev registry's model package group
    description: str  # the model package's
    schema: Path
    stage_files: dict[str, Path]  # by stage
    drift: str  # what --drift changes in a batch, said in the demo's output
    # the answer's columns, declared on the package (its predictions table's columns)
    output_columns: str = publish.DEFAULT_COLUMNS

    def model(self) -> ModuleType:
        """``<package>.model`` (imported when used: it may train, and it imports sklearn)."""
        return importlib.import_module(f"{self.package}.model")

    def data(self) -> ModuleType:
        return importlib.import_module(f"{self.package}.data")


def _own(folder: str) -> dict[str, Path]:
    return {
        "preprod": REPO / "examples" / folder / "pre-prod-config.tfvars.json",
        "prod": REPO / "examples" / folder / "prod-config.tfvars.json",
    }


EXAMPLES = {
    example.name: example
    for example in (
        # the template's own files: what a clone deploys until the team puts its model in
        Example(
            name="breast-cancer",
            package="examples.breast_cancer",
            project="breast-cancer",
            group="breast-cancer-classifier",
            description="scaler + logistic regression",
            schema=REPO / "pipelines" / "batch_inference" / "feature-schema.json",
            stage_files={
                "preprod": REPO / "pre-prod-config.tfvars.json",
                "prod": REPO / "prod-config.tfvars.json",
            },
            drift="its size features grew by half",
        ),
        Example(
            name="ticket-triage",
            package="examples.ticket_triage",
            project="ticket-triage",
            group="ticket-triage-classifier",
            description="one-hot categories + imputed, scaled numbers + multinomial regression",
            schema=REPO / "examples" / "ticket_triage" / "feature-schema.json",
            stage_files=_own("ticket_triage"),
            drift="most tickets come by phone and their messages are three times longer",
            output_columns="priority:string,p_low:double,p_normal:double,p_urgent:double",
        ),
    )
}
DEFAULT = "breast-cancer"
