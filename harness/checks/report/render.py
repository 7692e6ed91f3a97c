"""Rendering of the HTML reports: the entry points, which assemble the page from its parts.

    context.py          the run page's data, gathered from the run directory, one entry per part:
      header.py           run facts, device, packages against the baseline's
      summary.py          notices to read first, suite outcomes (the verdict)
      baseline.py         metrics against the baseline entry
      quality.py          tuned vs base corpus scores
      sentences.py        the per-sentence table
      figures.py          the SVG figures (and their drawing)
      memory.py           memory and parameters, measured vs predicted
      chat_template.py    the chat template, token by token
      training.py         training and phase timings
      version_matrix.py   the version matrix (also its own page)
    page.py             templates rendered with the inlined CSS and script, written atomically
    formatting.py       the templates' number filters

Templates are rendered with autoescape on: model outputs, data, library strings are text.
The only markup inserted unescaped is the harness's own: the stylesheet, the script and the
figures' SVG (matplotlib escapes the text it draws).
"""

from __future__ import annotations

from pathlib import Path

from harness.checks.report.context import run_context
from harness.checks.report.page import now, render, write
from harness.checks.report.version_matrix import matrix_context


def render_run_report(run, path: Path, outcomes: dict | None = None, comparison=None, *,
                      matrix_rows: list[dict] | None = None, verdicts: dict | None = None) -> Path:
    """Write the report of a finished run (`harness.run.stages.Run`) to `path`; return the path.

    outcomes: {suite file: [(node id, "passed" | "failed" | "skipped"), ...]} as the plugin
    records them, or None when only the run directory is known (the CLI).
    comparison: `harness.checks.baselines.Comparison` for the run's profile, or None.
    verdicts: `harness.checks.verdicts.collected(config)` (the BROKEN and CHANGED lists), or None.
    """
    context = run_context(run, outcomes, comparison, matrix_rows)
    context["verdicts"] = verdicts
    return write(Path(path), render("run.html", context))


def render_matrix_report(rows: list[dict], path: Path) -> Path:
    """Write the version-matrix report (rows from `harness.versions.matrix.report_rows`) to `path`."""
    context = {"title": "yoda-harness version matrix", "matrix": matrix_context(rows), "generated": now()}
    return write(Path(path), render("matrix.html", context))
