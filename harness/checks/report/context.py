"""What a run's page shows, gathered: the run's recorded artifacts handed to each section's builder.

Everything shown comes from what the run recorded (manifest + artifacts), the baseline
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
from harness.recipe.data import Columns


def run_context(run, outcomes: dict | None = None, comparison=None, matrix_rows: list[dict] | None = None) -> dict:
    """The run page's template context: one entry per part of the page (see templates/run.html)."""
    manifest = run.manifest
    template = _artifact(run, "template.json")
    generations = {which: _artifact(run, f"generations_{which}.jsonl") for which in ("base", "tuned")}
    sentences = sentences_context(manifest, generations)
    return {
        "title": f"yoda-harness report: {manifest.get('profile', '?')} / {manifest.get('key', '?')}",
        "generated": now(),
        "header": header_context(run, comparison),
        "notices": notices(manifest),
        "suites": suites_context(outcomes),
        "baseline": baseline_context(manifest, template, comparison),
        "quality": quality_context(manifest.get("metrics") or {}, Columns.of_run(manifest)),
        "sentences": sentences,
        # The BLEU histogram draws the per-sentence scores exactly as the table lists them.
        "figures": figures_context(manifest, sentences["rows"], comparison),
        "training": training_context(manifest),
        "memory": memory_context(manifest),
        "template": template_context(template, manifest.get("tokens") or {}, manifest.get("saved")),
        "phases": phases_context(manifest.get("phase_seconds") or {}),
        "matrix": matrix_context(matrix_rows) if matrix_rows is not None else None,
    }


def _artifact(run, name: str):
    """The artifact, or None where the run did not record it (or it is unreadable): its section says so."""
    try:
        return run.artifact(name)
    except (FileNotFoundError, ValueError):
        return None
