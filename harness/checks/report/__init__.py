"""The HTML report: one self-contained file per run (and one for the version matrix).

    render_run_report(run, path, outcomes, comparison, matrix_rows=None) -> path
    render_matrix_report(rows, path) -> path

Inline CSS, inline SVG figures (matplotlib, Agg) and a small inline script (sorting and
filtering of the per-sentence table); nothing is fetched, so the file works offline and
can be attached to a CI run. Jinja2 autoescape is on: every string that came from a model,
the data or a library shows as text.
"""

from harness.checks.report.render import render_matrix_report, render_run_report

__all__ = ["render_run_report", "render_matrix_report"]
