"""The shadow run's stage settings: how many days, the flip-rate limit, whether ids show.

A stage file sets ``shadow_days``, ``shadow_max_flip_rate`` and ``shadow_show_ids``; the
offline check (``promotion/stage_config.py``) and the template's validations hold their
ranges, ``build.py`` writes the resolved values into the stage's tfvars, and the shadow run
in prod's plan job (``pipelines/shadow_run.py --plan-job``) reads them from there. Terraform
creates nothing from them. One place for the ranges and defaults, so the three agree.

No AWS or SDK import here: ``build.py``'s offline check reads it.
"""

from __future__ import annotations

from typing import Any

DAYS = "shadow_days"
MAX_FLIP_RATE = "shadow_max_flip_rate"
SHOW_IDS = "shadow_show_ids"

DEFAULT_DAYS = 3
# 0 turns the shadow off; 14 is the most shadow_run takes (its --days). Each day is one run
# of the shadow pipeline, all at once, on plan-job credentials that last an hour
DAYS_RANGE = (0, 14)
DAYS_RULE = f"a whole number from {DAYS_RANGE[0]} to {DAYS_RANGE[1]} (0: no shadow run)"
FLIP_RATE_RULE = "a share from 0 to 1, or null (never fails the plan)"


def stage_values(stage_config: dict[str, Any]) -> dict[str, Any]:
    """The three settings as the tfvars carry them: the stage file's, or the defaults (the
    template's too). No limit (null) unless the stage file sets one."""
    days = stage_config.get(DAYS)
    return {
        DAYS: DEFAULT_DAYS if days is None else int(days),
        MAX_FLIP_RATE: stage_config.get(MAX_FLIP_RATE),
        SHOW_IDS: stage_config.get(SHOW_IDS) is True,
    }
