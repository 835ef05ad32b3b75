"""Batch input for the ticket-triage example: synthetic support tickets, with nulls and defects.

The population is drawn from fixed rules (seeded), so training and every batch share it: a
ticket's priority (``low``, ``normal``, ``urgent``) depends on its product, the customer's
tier, how many tickets the account has open, the message's length and sentiment, with noise.
``channel`` and ``message_length`` are sometimes missing (an empty field: a null the schema
allows); a small share of rows carries a defect ``preprocess.py`` must quarantine (a word
where a count belongs, a missing field).

    python -m examples.ticket_triage.data --rows 100000 --output build/tickets.csv
"""

from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ID_COLUMN = "ticket_id"
CATEGORIES = {
    "channel": ("email", "chat", "phone", "web"),
    "product": ("billing", "mobile-app", "api", "hardware"),
    "customer_tier": ("free", "pro", "enterprise"),
}
NUMBERS = ("account_age_days", "open_tickets", "message_length", "sentiment")
COLUMNS = ("channel", "product", "customer_tier", *NUMBERS)
NULLABLE = ("channel", "message_length")
PRIORITIES = ("low", "normal", "urgent")
NULL_SHARE = 0.05
# what --drift changes: most tickets come by phone and their messages are three times longer
DRIFTED_CHANNEL_SHARE, DRIFTED_LENGTH_FACTOR = 0.8, 3.0


@dataclass(frozen=True)
class Tickets:
    """Columns as Python lists (None is a null), in ``COLUMNS`` order, and the priorities."""

    columns: dict[str, list]
    priorities: list[str]


def draw(rows: int, seed: int = 7, drifted: bool = False) -> Tickets:
    """``rows`` tickets of the population (``drifted``: the shifted one ``--drift`` scores)."""
    rng = np.random.default_rng(seed)
    channel = rng.choice(CATEGORIES["channel"], rows, p=(0.4, 0.3, 0.1, 0.2)).astype(object)
    if drifted:
        channel[rng.random(rows) < DRIFTED_CHANNEL_SHARE] = "phone"
    product = rng.choice(CATEGORIES["product"], rows, p=(0.3, 0.3, 0.25, 0.15))
    tier = rng.choice(CATEGORIES["customer_tier"], rows, p=(0.5, 0.35, 0.15))
    age = rng.integers(1, 3000, rows)
    open_tickets = rng.poisson(1.5, rows)
    length = np.round(rng.lognormal(5.0, 0.7, rows), 1)
    if drifted:
        length = np.round(length * DRIFTED_LENGTH_FACTOR, 1)
    sentiment = np.round(np.clip(rng.normal(0.0, 0.5, rows), -1, 1), 3)
    urgency = (
        1.2 * (tier == "enterprise") + 0.5 * (tier == "pro")
        + 1.0 * (product == "hardware") + 0.6 * (product == "api")
        + 0.8 * (channel == "phone") + 0.35 * open_tickets
        - 1.5 * sentiment + 0.002 * (length - 150)
        + rng.normal(0.0, 0.6, rows)
    )  # fmt: skip
    priority = np.where(urgency > 2.6, "urgent", np.where(urgency > 1.2, "normal", "low"))
    columns: dict[str, list] = {
        "channel": channel.tolist(),
        "product": product.tolist(),
        "customer_tier": tier.tolist(),
        "account_age_days": age.tolist(),
        "open_tickets": open_tickets.tolist(),
        "message_length": length.tolist(),
        "sentiment": sentiment.tolist(),
    }
    for name in NULLABLE:  # missing after the label was drawn: what arrives, not what decided
        for row in np.flatnonzero(rng.random(rows) < NULL_SHARE):
            columns[name][row] = None
    return Tickets(columns, priority.tolist())


@dataclass(frozen=True)
class GeneratedInput:
    rows: int
    malformed: int
    path: Path


def generate(
    path: Path,
    rows: int = 100_000,
    malformed_fraction: float = 0.002,
    seed: int = 11,
    drifted: bool = False,
) -> GeneratedInput:
    """Write ``rows`` tickets (with a header, ids ``t000000001``...) to ``path``."""
    tickets = draw(rows, seed, drifted)
    rng = np.random.default_rng(seed + 1)
    defects = set(np.flatnonzero(rng.random(rows) < malformed_fraction).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow([ID_COLUMN, *COLUMNS])
        for row, values in enumerate(zip(*tickets.columns.values(), strict=True)):
            fields = ["" if value is None else value for value in values]
            if row in defects:
                if row % 2:
                    fields[COLUMNS.index("open_tickets")] = "many"
                else:
                    fields = fields[:-1]
            writer.writerow([f"t{row + 1:09d}", *fields])
    return GeneratedInput(rows, len(defects), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write ticket-triage batch input.")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--malformed-fraction", type=float, default=0.002)
    args = parser.parse_args(argv)
    result = generate(args.output, args.rows, args.malformed_fraction)
    print(f"wrote {result.rows} rows ({result.malformed} malformed) to {result.path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
