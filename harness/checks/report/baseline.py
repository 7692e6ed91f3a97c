"""The "Against the baseline" section: this run's metrics against the baseline entry of its profile.

Every row is the decision of `harness.checks.baselines` (the function the suites judge with), so the page
and the suites can never disagree about what is outside tolerance.
"""

from __future__ import annotations

from harness.checks import baselines
from harness.checks.report.formatting import is_number

# The decision's statuses as the report has always named them.
# "not-compared": the entry is another device's and has no cross-device band for the metric.
_ROW_STATUS = {"ok": "ok", "changed": "outside", "not-recorded": "new", "not-measured": "missing",
               "not-compared": "not compared"}


def baseline_context(record, template: dict | None, comparison) -> dict:
    """This run's metrics against the baseline entry, judged by the function the suites use."""
    if comparison is None:
        return _without_comparison()
    entry = comparison.entry
    verdicts, refusals, problem = _judged(record, template, comparison)
    rows = [_baseline_row(verdict, refused=refusals[baselines.scope_of(verdict.name)] is not None)
            for verdict in verdicts]
    return {
        "available": entry is not None,
        "file": comparison.path.name if comparison.path else None,
        "reason": comparison.reason,
        "changed": list(comparison.changed or []),
        "thresholds": sorted(record.thresholds.items()),
        "problem": problem,
        "refusal": refusals[baselines.RUN],
        "entry": {key: entry.get(key) for key in ("version_set", "device", "recorded", "run_key")} if entry else None,
        "rows": rows,
        "outside": [row["name"] for row in rows if row["status"] == "outside"],
    }


def _without_comparison() -> dict:
    return {"available": False, "reason": "no baseline comparison was given", "file": None, "entry": None,
            "changed": [], "thresholds": [], "problem": None, "rows": [], "outside": [], "refusal": None}


def _judged(record, template: dict | None, comparison) -> tuple[list, dict, str | None]:
    """Each metric's verdict, each scope's refusal (its inputs differ from the entry's) and what went wrong.

    A run whose metrics cannot be read (a partial record) still gets a page: the section
    says why it compares nothing instead of the report failing.
    """
    try:
        verdicts = comparison.judge_all(record, template) if comparison.entry else []
        refusals = {scope: comparison.refusal(record, scope) for scope in (baselines.MODEL, baselines.RUN)}
    except (KeyError, TypeError, IndexError) as error:
        return [], {baselines.MODEL: None, baselines.RUN: None}, f"metrics of this run could not be read: {error!r}"
    return verdicts, refusals, None


def _baseline_row(verdict, refused: bool = False) -> dict:
    current, stored = verdict.current, verdict.baseline
    row = {"name": verdict.name, "current": current, "baseline": stored, "delta": None,
           "tolerance": _tolerance(verdict),
           # A refused scope was not compared, whatever the numbers say.
           "status": "refused" if refused and verdict.status in ("ok", "changed") else _ROW_STATUS[verdict.status],
           "text": isinstance(current, str) or isinstance(stored, str)}
    if is_number(current) and is_number(stored):
        row["delta"] = current - stored
    return row


def _tolerance(verdict) -> str | None:
    """How the metric is judged: its direction, with the band where it has one; None where the entry lacks it."""
    if verdict.status == "not-recorded":
        return None
    if verdict.direction == baselines.EXACT or not verdict.band:
        return verdict.direction
    return f"{verdict.direction} {baselines.band_text(verdict.band)}"
