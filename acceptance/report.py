"""The acceptance run's verdicts: one per check, as JSON (for tools) and Markdown (to attach to
an issue). A check that did not run says why; only a check that read its evidence passes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from acceptance.catalogue import BY_ID, CHECKS

# passed / failed: the evidence was read; skipped: its step did not run (the stage has no
# endpoint, an earlier step failed); needs-real-account: the emulator cannot answer it
STATUSES = ("passed", "failed", "skipped", "needs-real-account")


@dataclass(frozen=True)
class Verdict:
    check: str  # a catalogue id
    status: str
    evidence: str  # what was read, or why nothing was

    def __post_init__(self) -> None:
        if self.check not in BY_ID:
            raise ValueError(f"unknown check {self.check!r}")
        if self.status not in STATUSES:
            raise ValueError(f"check {self.check}: status {self.status!r} is not one of {STATUSES}")


def complete(verdicts: list[Verdict], why_not_run: str) -> list[Verdict]:
    """Every check of the catalogue, in its order: those without a verdict are ``skipped``
    with ``why_not_run`` (nothing is left out of a report, nothing passes by default)."""
    given = {verdict.check: verdict for verdict in verdicts}
    return [given.get(c.id) or Verdict(c.id, "skipped", why_not_run) for c in CHECKS]


def to_json(verdicts: list[Verdict], run: dict[str, object]) -> str:
    counts = {status: sum(v.status == status for v in verdicts) for status in STATUSES}
    document = {"run": run, "counts": counts, "checks": [asdict(v) for v in verdicts]}
    return json.dumps(document, indent=2) + "\n"


def to_markdown(verdicts: list[Verdict], run: dict[str, object]) -> str:
    counts = ", ".join(
        f"{sum(v.status == status for v in verdicts)} {status}" for status in STATUSES
    )
    lines = [
        "# Acceptance run",
        "",
        *(f"- {key}: `{value}`" for key, value in run.items()),
        f"- verdicts: {counts}",
        "",
        "| check | claim | status | evidence |",
        "| --- | --- | --- | --- |",
    ]
    for verdict in verdicts:
        claim = BY_ID[verdict.check].claim
        cells = (verdict.check, claim, verdict.status, verdict.evidence)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def write(verdicts: list[Verdict], run: dict[str, object], folder: Path) -> tuple[Path, Path]:
    """``acceptance.json`` and ``acceptance.md`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "acceptance.json", folder / "acceptance.md"
    paths[0].write_text(to_json(verdicts, run), encoding="utf-8")
    paths[1].write_text(to_markdown(verdicts, run), encoding="utf-8")
    return paths
