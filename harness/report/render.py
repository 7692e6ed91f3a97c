"""Context building and rendering of the HTML reports.

Everything shown comes from what the run recorded (manifest + artifacts), the baseline
comparison and the suite outcomes; the report never re-scores or re-runs anything.
Templates are rendered with autoescape on: model outputs, data, library strings are text.
The only markup inserted unescaped is the harness's own: the stylesheet, the script and the
figures' SVG (matplotlib escapes the text it draws).
"""

from __future__ import annotations

from pathlib import Path

from harness.report.baseline import _ROW_STATUS, baseline_context  # noqa: F401  (tests import _ROW_STATUS from here)
from harness.report.chat_template import template_context
from harness.report.figures import figures_context
from harness.report.header import header_context
from harness.report.memory import memory_context
from harness.report.page import now, render, write
from harness.report.quality import quality_context
from harness.report.sentences import sentences_context
from harness.report.summary import notices, suites_context
from harness.report.training import phases_context, training_context


# Package columns shown first in the matrix (others follow by name).
MATRIX_PACKAGES = ("torch", "transformers", "peft", "trl", "bitsandbytes", "datasets", "accelerate")
MATRIX_METRICS = ("bleu", "base_bleu", "chrf", "stop_rate", "non_empty_stop_rate", "footprint_adapted_mb",
                  "trainable_parameters", "global_step", "loss_first", "loss_last", "train_loss")


# ------------------------------------------------------------------ public
def render_run_report(run, path: Path, outcomes: dict | None = None, comparison=None, *,
                      matrix_rows: list[dict] | None = None, verdicts: dict | None = None) -> Path:
    """Write the report of a finished run (`harness.recipe.Run`) to `path`; return the path.

    outcomes: {suite file: [(node id, "passed" | "failed" | "skipped"), ...]} as the plugin
    records them, or None when only the run directory is known (the CLI).
    comparison: `harness.baselines.Comparison` for the run's profile, or None.
    verdicts: `harness.verdicts.collected(config)` (the BROKEN and CHANGED lists), or None.
    """
    context = run_context(run, outcomes, comparison, matrix_rows)
    context["verdicts"] = verdicts
    return write(Path(path), render("run.html", context))


def render_matrix_report(rows: list[dict], path: Path) -> Path:
    """Write the version-matrix report (rows from `harness.matrix.report_rows`) to `path`."""
    context = {"title": "yoda-harness version matrix", "matrix": matrix_context(rows), "generated": now()}
    return write(Path(path), render("matrix.html", context))


def _artifact(run, name: str):
    try:
        return run.artifact(name)
    except (FileNotFoundError, ValueError):
        return None


# ------------------------------------------------------------------ run context
def run_context(run, outcomes: dict | None = None, comparison=None, matrix_rows: list[dict] | None = None) -> dict:
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
        "quality": quality_context(manifest.get("metrics") or {}),
        "sentences": sentences,
        "figures": figures_context(manifest, sentences["rows"], comparison),
        "training": training_context(manifest),
        "memory": memory_context(manifest),
        "template": template_context(template, manifest.get("tokens") or {}),
        "phases": phases_context(manifest.get("phase_seconds") or {}),
        "matrix": matrix_context(matrix_rows) if matrix_rows is not None else None,
    }


# ------------------------------------------------------------------ matrix
def matrix_context(rows: list[dict] | None) -> dict:
    rows = list(rows or [])
    present = {p for row in rows for p in (row.get("packages") or {})}
    packages = [p for p in MATRIX_PACKAGES if p in present] + sorted(present - set(MATRIX_PACKAGES))
    suites = sorted({s for row in rows for s in (row.get("suites") or {})})
    present_metrics = {m for row in rows for m in (row.get("metrics") or {})}
    metrics = [m for m in MATRIX_METRICS if m in present_metrics] + sorted(present_metrics - set(MATRIX_METRICS))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.get("status", "?")] = counts.get(row.get("status", "?"), 0) + 1
    return {
        "packages": packages, "suites": suites, "metrics": metrics, "counts": sorted(counts.items()),
        "rows": [{
            "version_set": row.get("version_set"),
            "status": row.get("status"),
            "reason": row.get("reason"),
            "packages": row.get("packages") or {},
            "suites": row.get("suites") or {},
            "metrics": row.get("metrics") or {},
        } for row in rows],
    }
