"""What a run's page shows, gathered: the run's recorded artifacts handed to each section's builder.

Everything shown comes from what the run recorded (its record + artifacts), the baseline
comparison and the suite outcomes; the report never re-scores or re-runs anything.
"""

from __future__ import annotations

from harness.checks.report.baseline import baseline_context
from harness.checks.report.chat_template import template_context
from harness.checks.report.figures import figures_context
from harness.checks.report.header import header_context
from harness.checks.report.memory import memory_context
from harness.checks.report.page import now
from harness.checks.report.quality import quality_context
from harness.checks.report.sentences import sentences_context
from harness.checks.report.summary import notices, suites_context
from harness.checks.report.training import phases_context, training_context
from harness.checks.report.version_matrix import matrix_context


def run_context(run, outcomes: dict | None = None, comparison=None, matrix_rows: list[dict] | None = None) -> dict:
    """The run page's template context: one entry per part of the page (see templates/run.html)."""
    record = run.record
    template = _artifact(run, "template.json")
    generations = {which: _artifact(run, f"generations_{which}.jsonl") for which in ("base", "tuned")}
    sentences = sentences_context(record, generations)
    return {
        "title": f"yoda-harness report: {record.profile} / {record.key}",
        "generated": now(),
        "header": header_context(run, comparison),
        "notices": notices(record),
        "suites": suites_context(outcomes),
        "baseline": baseline_context(record, template, comparison),
        "quality": quality_context(record.metrics if record.trained else None, record.columns),
        "sentences": sentences,
        # The BLEU histogram draws the per-sentence scores exactly as the table lists them.
        "figures": figures_context(record, sentences["rows"], comparison),
        "training": training_context(record),
        "memory": memory_context(record),
        "template": template_context(template, record.tokens, record.saved if record.trained else None),
        "phases": phases_context(record.phase_seconds),
        "matrix": matrix_context(matrix_rows) if matrix_rows is not None else None,
    }


def _artifact(run, name: str):
    """The artifact, or None where the run did not record it (or it is unreadable): its section says so."""
    try:
        return run.artifact(name)
    except (FileNotFoundError, ValueError):
        return None
